package hub_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.RunWith(t, func(t *testing.T, opts hub.StoreOptions) hub.Store {
		return hub.NewMemoryStore(opts)
	}, storetest.Options{FakeClock: true})
}

// recorder collects a store's notifications.
type recorder struct {
	mu     sync.Mutex
	events []hub.Event
}

func (r *recorder) notify(e hub.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) take() []hub.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// afterNow returns a time strictly after every time.Now() taken so far, so
// that the memory store's timestamps fall on either side of it.
func afterNow() time.Time {
	t0 := time.Now()
	for {
		if t := time.Now(); t.After(t0) {
			return t
		}
	}
}

func storeRead(s *hub.MemoryStore, q hub.ReadQuery, exp hub.Expiry) (hub.ReadResult, error) {
	return s.Read(context.Background(), q, exp)
}

// Sweep removes the channels, with their messages, and the clients that
// expired, takes expired clients off the channels they read, and tells the
// hub about each removed channel so that reads held on it end.
func TestMemorySweep(t *testing.T) {
	ctx := context.Background()
	var rec recorder
	s := hub.NewMemoryStore(hub.StoreOptions{Notify: rec.notify})
	exp := hub.Expiry{SessionTimeout: time.Minute, InactiveChannelTimeout: time.Minute}
	for _, c := range []string{"old", "new"} {
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: c, MaxMessages: 10}, exp); err != nil {
			t.Fatal(err)
		}
		enc, _ := hub.EncodeContent("x")
		if _, err := s.Publish(ctx, hub.Publication{Channel: c, Encoded: enc}, time.Now(), exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "gone"}, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := storeRead(s, hub.ReadQuery{Channels: []string{"old", "new"}, ClientID: "gone"}, exp); err != nil {
		t.Fatal(err)
	}

	// Everything above was last active before mid; "new" and "stays" are
	// renewed after it.
	mid := afterNow()
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "stays"}, exp); err != nil {
		t.Fatal(err)
	}
	if _, err := storeRead(s, hub.ReadQuery{Channels: []string{"new"}, ClientID: "stays"}, exp); err != nil {
		t.Fatal(err)
	}
	rec.take()

	// Expiry off: nothing goes, however late.
	s.Sweep(mid.Add(24*time.Hour), hub.Expiry{})
	if st, _ := s.Status(ctx); len(st.Channels) != 2 || len(st.Clients) != 2 {
		t.Fatalf("sweep with expiry off removed something: %+v", st)
	}
	// Before anything's timeout, nothing goes.
	s.Sweep(time.Now(), exp)
	if st, _ := s.Status(ctx); len(st.Channels) != 2 || len(st.Clients) != 2 {
		t.Fatalf("sweep before the timeout removed something: %+v", st)
	}

	s.Sweep(mid.Add(time.Minute), exp)
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Channels) != 1 || st.Channels[0].ID != "new" {
		t.Fatalf("channels after sweep: %+v, want only new", st.Channels)
	}
	if !slices.Equal(st.Clients, []string{"stays"}) {
		t.Fatalf("clients after sweep: %q, want [stays]", st.Clients)
	}
	if !slices.Equal(st.Channels[0].Clients, []string{"stays"}) {
		t.Fatalf("clients of new after sweep: %q, want [stays]", st.Channels[0].Clients)
	}
	if st.Counts.Messages != 1 {
		t.Fatalf("messages_count after sweep: %d, want 1 (the expired channel's went with it)", st.Counts.Messages)
	}
	if got := rec.take(); !slices.Equal(got, []hub.Event{{Kind: hub.EventDeleted, Channel: "old"}}) {
		t.Fatalf("notifications %+v, want one deletion of old", got)
	}

	enc, _ := hub.EncodeContent("x")
	if _, err := s.Publish(ctx, hub.Publication{Channel: "old", Encoded: enc}, time.Now(), exp); !errors.Is(err, hub.ErrNoChannel) {
		t.Fatalf("publish to a swept channel: %v, want %v", err, hub.ErrNoChannel)
	}
	if _, err := storeRead(s, hub.ReadQuery{Channels: []string{"new"}, ClientID: "gone"}, exp); !errors.Is(err, hub.ErrUnregisteredClient) {
		t.Fatalf("read by a swept client: %v, want %v", err, hub.ErrUnregisteredClient)
	}
}

// An expired channel or client counts as gone at once, before any sweep, so
// that expiry does not depend on when the sweep runs.
func TestMemoryExpiryBeforeSweep(t *testing.T) {
	ctx := context.Background()
	s := hub.NewMemoryStore(hub.StoreOptions{})
	long := hub.Expiry{SessionTimeout: time.Hour, InactiveChannelTimeout: time.Hour}
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "a", MaxMessages: 10}, long); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "c"}, long); err != nil {
		t.Fatal(err)
	}
	_ = afterNow() // the clock moves past the writes, so a nanosecond timeout has passed
	short := hub.Expiry{SessionTimeout: time.Nanosecond, InactiveChannelTimeout: time.Nanosecond}

	enc, _ := hub.EncodeContent("x")
	if _, err := s.Publish(ctx, hub.Publication{Channel: "a", Encoded: enc}, time.Now(), short); !errors.Is(err, hub.ErrNoChannel) {
		t.Fatalf("publish to an expired channel: %v, want %v", err, hub.ErrNoChannel)
	}
	if _, err := storeRead(s, hub.ReadQuery{Channels: []string{"a"}}, short); !errors.Is(err, hub.ErrNoValidChannels) {
		t.Fatalf("read of an expired channel: %v, want %v", err, hub.ErrNoValidChannels)
	}
	if _, err := storeRead(s, hub.ReadQuery{Channels: []string{"a"}, ClientID: "c"}, hub.Expiry{SessionTimeout: time.Nanosecond}); !errors.Is(err, hub.ErrUnregisteredClient) {
		t.Fatalf("read by an expired client: %v, want %v", err, hub.ErrUnregisteredClient)
	}
	// The ids are free to register again.
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "a", MaxMessages: 10}, short); err != nil {
		t.Fatalf("registering over an expired channel: %v", err)
	}
	if err := s.CreateClient(ctx, hub.ClientSpec{ID: "c"}, short); err != nil {
		t.Fatalf("registering over an expired client: %v", err)
	}
}

// Status counts channels, clients and retained messages, and each channel's
// count stays within its max_messages.
func TestMemoryStatusCounts(t *testing.T) {
	ctx := context.Background()
	s := hub.NewMemoryStore(hub.StoreOptions{})
	exp := hub.Expiry{}
	specs := []hub.ChannelSpec{{ID: "c", MaxMessages: 2}, {ID: "a", MaxMessages: 5}, {ID: "b", MaxMessages: 1, UseSessions: true}}
	for _, spec := range specs {
		if err := s.CreateChannel(ctx, spec, exp); err != nil {
			t.Fatal(err)
		}
	}
	enc, _ := hub.EncodeContent("x")
	for _, n := range []struct {
		id    string
		count int
	}{{"a", 3}, {"b", 4}, {"c", 2}} {
		for range n.count {
			if _, err := s.Publish(ctx, hub.Publication{Channel: n.id, Encoded: enc}, time.Now(), exp); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []string{"z", "x", "y"} {
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: c}, exp); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id    string
		count int
	}{{"a", 3}, {"b", 1}, {"c", 2}}
	if len(st.Channels) != len(want) {
		t.Fatalf("status channels %+v", st.Channels)
	}
	for i, w := range want {
		if c := st.Channels[i]; c.ID != w.id || c.MessagesCount != w.count {
			t.Fatalf("channel %d: %s with %d messages, want %s with %d", i, c.ID, c.MessagesCount, w.id, w.count)
		}
	}
	if st.Counts.Messages != 6 {
		t.Fatalf("messages_count %d, want 6", st.Counts.Messages)
	}
	if !slices.Equal(st.Clients, []string{"x", "y", "z"}) {
		t.Fatalf("clients %q, want [x y z]", st.Clients)
	}
	if removed, err := s.DeleteChannel(ctx, "a"); err != nil || !removed {
		t.Fatalf("delete: %v %v", removed, err)
	}
	if st, _ := s.Status(ctx); len(st.Channels) != 2 || st.Counts.Messages != 3 {
		t.Fatalf("after deleting a: %d channels, %d messages; want 2 and 3", len(st.Channels), st.Counts.Messages)
	}
}
