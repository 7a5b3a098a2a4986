package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/simple-comet/caddy-comet/hub"
)

// failBound is how long a call may take to fail while Redis is down: the
// store's timeout (1s in these tests) plus slack for a loaded machine. It is
// not a speed measurement: the property is that calls fail instead of
// hanging.
const failBound = 3 * time.Second

// storeDown asserts that err is a store failure, not an API error, and came
// within failBound.
func storeDown(t *testing.T, what string, err error, took time.Duration) {
	t.Helper()
	var apiErr *hub.Error
	switch {
	case err == nil:
		t.Fatalf("%s succeeded with Redis down", what)
	case errors.As(err, &apiErr):
		t.Fatalf("%s: %v is an API error; a store failure must not be one", what, err)
	case took > failBound:
		t.Fatalf("%s took %v to fail, more than %v", what, took, failBound)
	}
}

// Killing redis-server and starting it again on the same port: calls fail
// fast with a store error while it is down, the outage is logged once, and
// the same store (no reopening) works again afterwards with the data Redis
// kept, and wakes its hub again.
func TestRedisKilledAndRestarted(t *testing.T) {
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	core, logs := observer.New(zapcore.InfoLevel)
	ev := newEvents()
	s := open(t, srv.Addr(), "default", ev.options(), zap.New(core))
	other := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "kept", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "alice"}, exp); err != nil {
		t.Fatal(err)
	}
	m1 := mustPublish(t, s, "kept", "before the outage")

	srv.Kill()
	// The lost subscription is reported at once, so held reads look again
	// (and fail) instead of waiting for wake-ups that cannot come.
	ev.wait(t, kind(hub.EventResync, ""))
	enc, _ := hub.EncodeContent("during the outage")
	for range 10 {
		start := time.Now()
		_, err := s.Publish(ctx, hub.Publication{Channel: "kept", Encoded: enc}, time.Now(), exp)
		storeDown(t, "publish", err, time.Since(start))
		start = time.Now()
		_, err = s.Read(ctx, hub.ReadQuery{Channels: []string{"kept"}, ClientID: "alice"}, exp)
		storeDown(t, "read", err, time.Since(start))
		start = time.Now()
		err = s.CreateClient(ctx, hub.ClientSpec{ID: "bob"}, exp)
		storeDown(t, "register client", err, time.Since(start))
	}
	if n := logs.FilterMessageSnippet("redis unreachable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once: %v", n, logs.All())
	}
	if logs.FilterMessageSnippet("redis unreachable").All()[0].Level != zapcore.ErrorLevel {
		t.Fatal("outage not logged as an error")
	}

	srv.Restart()
	// Subscribed again: the hub is told to look again, since events
	// published in between were missed.
	ev.wait(t, kind(hub.EventResync, ""))
	res, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"kept"}, ClientID: "alice"}, exp)
	if err != nil {
		t.Fatalf("read after the restart: %v", err)
	}
	if len(res.Channels) != 1 || len(res.Channels[0].Messages) != 1 || res.Channels[0].Messages[0].ID != m1.ID {
		t.Fatalf("after the restart: %+v, want the message Redis kept (%d)", res, m1.ID)
	}
	m2, err := other.Publish(ctx, hub.Publication{Channel: "kept", Encoded: enc}, time.Now(), exp)
	if err != nil {
		t.Fatalf("publish on the other store after the restart: %v", err)
	}
	if m2.ID <= m1.ID {
		t.Fatalf("id after restart %d not above %d", m2.ID, m1.ID)
	}
	ev.wait(t, kind(hub.EventPublished, "kept"))
	if n := logs.FilterMessageSnippet("redis reachable again").Len(); n != 1 {
		t.Fatalf("recovery logged %d times, want once: %v", n, logs.All())
	}
}

// A Redis that accepts connections but does not answer (paused) makes calls
// fail after the store's timeout instead of hanging, and they work again
// when it answers.
func TestRedisUnresponsive(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "c", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Run("CLIENT", "PAUSE", "2500", "ALL"); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("x")
	start := time.Now()
	_, err := s.Publish(ctx, hub.Publication{Channel: "c", Encoded: enc}, time.Now(), exp)
	storeDown(t, "publish to a paused redis", err, time.Since(start))
	if _, err := srv.Run("CLIENT", "UNPAUSE"); err != nil {
		t.Fatal(err)
	}
	// The timed-out connection is replaced on the next call.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = s.Publish(ctx, hub.Publication{Channel: "c", Encoded: enc}, time.Now(), exp); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish still failing 10s after unpausing: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The health probe answers while Redis does, fails fast while Redis is down
// (the outage logged once, however many probes meet it), and answers again
// by itself once Redis is back (logged once).
func TestPingThroughOutage(t *testing.T) {
	srv := startRedis(t)
	core, logs := observer.New(zapcore.InfoLevel)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, zap.New(core))
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping with redis up: %v", err)
	}

	srv.Kill()
	for range 10 {
		start := time.Now()
		err := s.Ping(ctx)
		storeDown(t, "ping", err, time.Since(start))
	}
	if n := logs.FilterMessageSnippet("redis unreachable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once: %v", n, logs.All())
	}

	srv.Restart()
	untilRecovered(t, "ping", func() error { return s.Ping(ctx) })
	if n := logs.FilterMessageSnippet("redis reachable again").Len(); n != 1 {
		t.Fatalf("recovery logged %d times, want once: %v", n, logs.All())
	}
}

// A probe's deadline bounds it below the store's timeout, and running out
// of it counts as Redis not answering (unlike a request's client going
// away): a paused Redis fails the probe at the probe's deadline, and the
// outage is logged.
func TestPingDeadline(t *testing.T) {
	srv := startRedis(t)
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := Open(Options{
		Client:  rueidis.ClientOption{InitAddress: []string{srv.Addr()}},
		Timeout: time.Minute, // only the probe's deadline can end it in time
		Logger:  zap.New(core),
	}, hub.StoreOptions{Hub: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// Paused for far longer than the probe's deadline; the pause ends by
	// itself (a CLIENT UNPAUSE would wait for it too).
	if _, err := srv.Run("CLIENT", "PAUSE", "2000", "ALL"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Ping(ctx)
	storeDown(t, "ping of a paused redis", err, time.Since(start))
	if !strings.Contains(err.Error(), "no answer from redis within 300ms") {
		t.Fatalf("ping of a paused redis: %v, want it to say it had no answer within the probe's 300ms", err)
	}
	if n := logs.FilterMessageSnippet("redis unreachable").Len(); n != 1 {
		t.Fatalf("outage logged %d times, want once: %v", n, logs.All())
	}

	untilRecovered(t, "ping", func() error { return s.Ping(context.Background()) })
}

// untilRecovered repeats call until it succeeds, failing the test after 10s.
// The store reconnects by itself and nothing tells when, hence the polling.
func untilRecovered(t *testing.T, what string, call func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still failing 10s after redis came back: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// After Redis restarts, once a call has succeeded every later call succeeds
// too, until Redis goes away again: the store does not flap. Several rounds,
// because what broke it was chance: commands spread at random over
// connections, one fresh and one still dead.
func TestRedisRestartedCallsKeepSucceeding(t *testing.T) {
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "c", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("x")
	q := hub.ReadQuery{Channels: []string{"c"}}
	const rounds, calls = 20, 10
	for round := range rounds {
		srv.Kill()
		srv.Restart()
		untilRecovered(t, "read", func() error {
			_, err := s.Read(ctx, q, exp)
			return err
		})
		for i := range calls {
			if _, err := s.Read(ctx, q, exp); err != nil {
				t.Fatalf("round %d: read %d after the store had recovered: %v", round, i, err)
			}
			if _, err := s.Publish(ctx, hub.Publication{Channel: "c", Encoded: enc}, time.Now(), exp); err != nil {
				t.Fatalf("round %d: publish %d after the store had recovered: %v", round, i, err)
			}
		}
	}
}

// After Redis restarts, a read held on one node is released by a publish on
// another, and neither fails. The read registers before its node has
// subscribed again (the store waits a little before resubscribing), so the
// publish's notification is missed and what releases the read is the
// EventResync sent once the subscription is back: the read it makes look
// again must not fail, which would lose the held read (an empty
// "unavailable" reply) or fail one just registered (-4).
func TestRedisRestartedHeldReadsAreReleased(t *testing.T) {
	srv := startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	a, b := openHub(t, srv.Addr()), openHub(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	last, err := b.Publish(ctx, "c", "first")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		srv.Kill()
		srv.Restart()
		for _, n := range []*hub.Hub{a, b} {
			untilRecovered(t, "read", func() error {
				_, err := n.Read(ctx, hub.ReadRequest{Channels: "c"}, nil)
				return err
			})
		}
		type result struct {
			rep hub.Reply
			err error
		}
		held := make(chan result, 1)
		go func() {
			rep, err := a.Read(ctx, hub.ReadRequest{Channels: "c", Since: last.ID}, nil)
			held <- result{rep, err}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for a.Held() != 1 {
			select {
			case r := <-held:
				t.Fatalf("round %d: read answered before any publish: %+v, %v", round, r.rep, r.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: read not held after 10s", round)
			}
			time.Sleep(time.Millisecond) // polling an observable state, not standing in for a signal
		}
		m, err := b.Publish(ctx, "c", fmt.Sprint("round ", round))
		if err != nil {
			t.Fatalf("round %d: publish after the store had recovered: %v", round, err)
		}
		select {
		case r := <-held:
			if r.err != nil {
				t.Fatalf("round %d: held read: %v", round, r.err)
			}
			if r.rep.Reason != hub.ReleasedMessages || len(r.rep.Channels) != 1 ||
				len(r.rep.Channels[0].Messages) != 1 || r.rep.Channels[0].Messages[0].ID != m.ID {
				t.Fatalf("round %d: held read answered %v with %+v, want message %d", round, r.rep.Reason, r.rep.Channels, m.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: held read not released within 10s of the publish", round)
		}
		last = m
	}
}
