package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// evalCalls is how many scripts Redis has run.
func evalCalls(t *testing.T, calls map[string]int64) int64 {
	t.Helper()
	return calls["evalsha"] + calls["eval"]
}

// A node answers what it holds without Redis, and forgets it all when it
// loses its subscription: after Redis came back empty (no persistence), a
// read gets what Redis has (the channel is gone), never the node's copy.
func TestCacheIsEmptiedWhenTheSubscriptionDrops(t *testing.T) {
	srv := startRedis(t)
	a := node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "c", "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Read(ctx, hub.ReadRequest{Channels: "c"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "c", "two"); err != nil {
		t.Fatal(err)
	}
	// The event of "two" reaches the node's cache before its wake-up;
	// nothing waits for it here, so wait until a read finds it there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := evalCalls(t, commandCalls(t, srv))
		r, err := a.Read(ctx, hub.ReadRequest{Channels: "c", Hold: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := contents(r, "c"); len(got) == 2 && evalCalls(t, commandCalls(t, srv)) == before {
			break // answered by the node alone
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never answered a read of what it was sent without Redis")
		}
		time.Sleep(time.Millisecond) // polling an observable state, not standing in for a signal
	}

	srv.Kill()
	srv.Restart()
	// Read once the node has subscribed again, when it may answer alone.
	events := newKeys(DefaultKeyPrefix, "shared").events()
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, err := srv.Run("PUBSUB", "NUMSUB", events)
		if err == nil && out == events+"\n1\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not subscribe again within 10s: %q %v", out, err)
		}
		time.Sleep(time.Millisecond) // polling an observable state, not standing in for a signal
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r, err := a.Read(ctx, hub.ReadRequest{Channels: "c", Hold: -1}, nil)
		if errors.Is(err, hub.ErrNoValidChannels) {
			return
		}
		if err == nil {
			t.Fatalf("read after Redis came back empty: %q, want the channel gone", contents(r, "c"))
		}
		if time.Now().After(deadline) {
			t.Fatalf("read after Redis came back: %v, want ErrNoValidChannels within 10s", err)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}

// A read right after a publish on the same node sees it, as it would in
// Redis, though the publish's event, which feeds the node's copy of the
// channel, comes a moment after the publish's reply: the node answers from
// its copy only once the events have shown its own publishes.
func TestReadAfterPublishOnTheSameNodeSeesIt(t *testing.T) {
	srv := startRedis(t)
	a := node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	first, err := a.Publish(ctx, "c", "first")
	if err != nil {
		t.Fatal(err)
	}
	// Until the node holds the channel: a read answered without Redis.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := evalCalls(t, commandCalls(t, srv))
		if _, err := a.Read(ctx, hub.ReadRequest{Channels: "c", Hold: -1}, nil); err != nil {
			t.Fatal(err)
		}
		if evalCalls(t, commandCalls(t, srv)) == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never answered a read of what it was sent without Redis")
		}
		time.Sleep(time.Millisecond) // polling an observable state, not standing in for a signal
	}
	since := first.ID
	for i := range 100 {
		m, err := a.Publish(ctx, "c", fmt.Sprint("message ", i))
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Read(ctx, hub.ReadRequest{Channels: "c", Since: since, Hold: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := messageIDs(r); len(got) != 1 || got[0] != m.ID {
			t.Fatalf("publish %d: a read since %d right after it got %v, want [%d]", i, since, got, m.ID)
		}
		since = m.ID
	}
}

// A node of an earlier version publishes an event that carries no message
// ("p<channel>"): a node drops its copy of the channel and reads Redis, so
// its held read gets the message.
func TestPublishByAnEarlierVersionIsDelivered(t *testing.T) {
	srv := startRedis(t)
	a := node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	first, err := a.Publish(ctx, "c", "new")
	if err != nil {
		t.Fatal(err)
	}
	held := readAsync(a, hub.ReadRequest{Channels: "c", Since: first.ID})
	waitHeld(t, a, 1)

	// What the earlier version's publish script does.
	k := newKeys(DefaultKeyPrefix, "shared")
	id := first.ID + 1
	ids := strconv.FormatInt(id, 10)
	for _, cmd := range [][]string{
		{"SET", k.id(), ids},
		{"ZADD", k.messages("c"), ids, fmt.Sprintf(`{"content":"old","id":%d,"ts":1}`, id)},
		{"PUBLISH", k.events(), "pc"},
	} {
		if _, err := srv.Run(cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	select {
	case r := <-held:
		if r.err != nil || r.reply.LastID != id || len(contents(r.reply, "c")) != 1 || contents(r.reply, "c")[0] != "old" {
			t.Fatalf("held read: %+v %v, want the message %d", r.reply, r.err, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held read not released by an earlier version's publish")
	}

	// And the node goes on answering from what it is sent.
	held = readAsync(a, hub.ReadRequest{Channels: "c", Since: id})
	waitHeld(t, a, 1)
	m, err := a.Publish(ctx, "c", "newer")
	if err != nil {
		t.Fatal(err)
	}
	if r := <-held; r.err != nil || r.reply.LastID != m.ID {
		t.Fatalf("held read: %+v %v, want the message %d", r.reply, r.err, m.ID)
	}
}
