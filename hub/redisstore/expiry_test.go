package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// pttl returns a key's remaining life in ms (-1: no expiry, -2: no key).
func pttl(t *testing.T, srv *redistest.Server, key string) int64 {
	t.Helper()
	out, err := srv.Run("PTTL", key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("PTTL %s: %q", key, out)
	}
	return n
}

func wantTTL(t *testing.T, srv *redistest.Server, key string, d time.Duration) {
	t.Helper()
	got := pttl(t, srv, key)
	if d == 0 {
		if got != -1 {
			t.Fatalf("%s: PTTL %d, want no expiry", key, got)
		}
		return
	}
	if got <= 0 || got > d.Milliseconds() || got < d.Milliseconds()-5000 {
		t.Fatalf("%s: PTTL %d, want about %d", key, got, d.Milliseconds())
	}
}

// Each call sets the TTLs of the Expiry it is given, so a reload that
// changes the timeouts applies to existing channels and sessions; 0 means
// no expiry.
func TestTTLsFollowExpiry(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	k := s.keys
	ctx := context.Background()
	e1 := hub.Expiry{SessionTimeout: 60 * time.Second, InactiveChannelTimeout: 90 * time.Second}
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "c", MaxMessages: 5}, e1); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "u"}, e1); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("x")
	if _, err := s.Publish(ctx, hub.Publication{Channel: "c", Encoded: enc}, time.Now(), e1); err != nil {
		t.Fatal(err)
	}
	wantTTL(t, srv, k.channel("c"), 90*time.Second)
	wantTTL(t, srv, k.messages("c"), 90*time.Second)
	wantTTL(t, srv, k.client("u"), 60*time.Second)
	if pttl(t, srv, k.id()) != -1 {
		t.Fatal("the id counter must never expire")
	}

	e2 := hub.Expiry{SessionTimeout: 600 * time.Second, InactiveChannelTimeout: 900 * time.Second}
	if _, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"c"}, ClientID: "u"}, e2); err != nil {
		t.Fatal(err)
	}
	wantTTL(t, srv, k.channel("c"), 900*time.Second)
	wantTTL(t, srv, k.messages("c"), 900*time.Second)
	wantTTL(t, srv, k.readers("c"), 900*time.Second)
	wantTTL(t, srv, k.client("u"), 600*time.Second)

	e3 := hub.Expiry{}
	if err := s.Touch(ctx, []string{"c", "unknown"}, []string{"u", "nobody"}, e3); err != nil {
		t.Fatal(err)
	}
	wantTTL(t, srv, k.channel("c"), 0)
	wantTTL(t, srv, k.messages("c"), 0)
	wantTTL(t, srv, k.readers("c"), 0)
	wantTTL(t, srv, k.client("u"), 0)
	if pttl(t, srv, k.channel("unknown")) != -2 || pttl(t, srv, k.client("nobody")) != -2 {
		t.Fatal("touch created keys for unknown ids")
	}
}

// waitUntil polls cond: expiry has no event to wait for.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis expires idle channels and sessions by itself; nothing sweeps.
func TestIdleChannelsAndSessionsExpire(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	short := hub.Expiry{SessionTimeout: 200 * time.Millisecond, InactiveChannelTimeout: 200 * time.Millisecond}
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "idle", MaxMessages: 5}, short); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "gone"}, short); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("x")
	if _, err := s.Publish(ctx, hub.Publication{Channel: "idle", Encoded: enc}, time.Now(), short); err != nil {
		t.Fatal(err)
	}
	// Status renews nothing, so it can watch.
	waitUntil(t, "channel and session expire", func() bool {
		st, err := s.Status(ctx)
		return err == nil && len(st.Channels) == 0 && len(st.Clients) == 0
	})
	if _, err := s.Publish(ctx, hub.Publication{Channel: "idle", Encoded: enc}, time.Now(), short); !errors.Is(err, hub.ErrNoChannel) {
		t.Fatalf("publish to an expired channel: %v, want ErrNoChannel", err)
	}
	if _, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"idle"}, ClientID: "gone"}, short); !errors.Is(err, hub.ErrUnregisteredClient) {
		t.Fatalf("read with an expired client: %v, want ErrUnregisteredClient", err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "gone"}, exp); err != nil {
		t.Fatalf("registering an expired client again: %v", err)
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Channels) != 0 || st.Counts.Channels != 0 || len(st.Clients) != 1 || st.Counts.Clients != 1 {
		t.Fatalf("status after expiry: %+v, want no channels and the re-registered client", st)
	}
	if out, _ := srv.Run("ZCARD", s.keys.channels()); strings.TrimSpace(out) != "0" {
		t.Fatalf("channel index keeps %s expired entries", out)
	}
	// A channel registered again under the expired id starts empty.
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "idle", MaxMessages: 5}, exp); err != nil {
		t.Fatal(err)
	}
	res, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"idle"}}, exp)
	if err != nil || res.HasMessages() {
		t.Fatalf("re-registered channel: %+v %v, want empty", res, err)
	}
}

// Touch keeps channels and sessions of held reads alive past their
// timeouts.
func TestTouchKeepsHeldReadsAlive(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	short := hub.Expiry{SessionTimeout: 300 * time.Millisecond, InactiveChannelTimeout: 300 * time.Millisecond}
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "held", MaxMessages: 5}, short); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "holder"}, short); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		time.Sleep(100 * time.Millisecond) // time passing is what is tested
		if err := s.Touch(ctx, []string{"held"}, []string{"holder"}, short); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"held"}, ClientID: "holder"}, short); err != nil {
		t.Fatalf("after 1s of touches with 300ms timeouts: %v", err)
	}
}

// Touch handles more ids than one script takes.
func TestTouchManyIDs(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	var ids []string
	for i := range 3*touchChunk + 7 {
		id := "c" + strconv.Itoa(i)
		ids = append(ids, id)
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: id, MaxMessages: 1}, exp); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: id}, exp); err != nil {
			t.Fatal(err)
		}
	}
	long := hub.Expiry{SessionTimeout: time.Hour, InactiveChannelTimeout: 2 * time.Hour}
	if err := s.Touch(ctx, ids, ids, long); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ids[0], ids[touchChunk], ids[len(ids)-1]} {
		wantTTL(t, srv, s.keys.channel(id), 2*time.Hour)
		wantTTL(t, srv, s.keys.client(id), time.Hour)
	}
}

// Registering channels and clients removes a few expired entries from the
// indexes each time, so they do not grow with every id ever used even when
// nobody asks for the status.
func TestIndexesDropExpiredEntries(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	short := hub.Expiry{SessionTimeout: 50 * time.Millisecond, InactiveChannelTimeout: 50 * time.Millisecond}
	for i := range 40 {
		id := "old" + strconv.Itoa(i)
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: id, MaxMessages: 1}, short); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: id}, short); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "all expired", func() bool {
		return pttl(t, srv, s.keys.channel("old39")) == -2 && pttl(t, srv, s.keys.client("old39")) == -2
	})
	for i := range 3 {
		id := "new" + strconv.Itoa(i)
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: id, MaxMessages: 1}, exp); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: id}, exp); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{s.keys.channels(), s.keys.sessions()} {
		out, err := srv.Run("ZCARD", key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "3" {
			t.Fatalf("%s has %s entries after 3 registrations, want the 3 live ones", key, strings.TrimSpace(out))
		}
	}
}
