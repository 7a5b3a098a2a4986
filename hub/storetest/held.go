package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

func (s *suite) testDelete(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "b", false, 10)
	mustPublish(t, h, "a", "x")
	mustPublish(t, h, "b", "y")
	ctx := context.Background()

	cases := []struct {
		name    string
		id      string
		removed bool
		err     *hub.Error
		detail  string
	}{
		{"existing", "a", true, nil, ""},
		{"again", "a", false, nil, ""},
		{"never registered", "nope", false, nil, ""},
		{"missing id", "", false, hub.ErrMissingChannelID, ""},
		{"invalid id", "a|b", false, hub.ErrInvalidChannelID, "'|'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			removed, err := h.DeleteChannel(ctx, tc.id)
			wantErr(t, "deleting", err, tc.err, tc.detail)
			if removed != tc.removed {
				t.Fatalf("removed %v, want %v", removed, tc.removed)
			}
		})
	}

	if _, ok := channelStatus(t, h, "a"); ok {
		t.Fatal("deleted channel listed in status")
	}
	wantMessagesCount(t, status(t, h).Counts, 1)
	_, err := h.Publish(ctx, "a", "x")
	wantErr(t, "publish to a deleted channel", err, hub.ErrNoChannel, "")
	_, err = read(h, hub.ReadRequest{Channels: "a"}, patience)
	wantErr(t, "read of a deleted channel", err, hub.ErrNoValidChannels, "")
	r := mustRead(t, h, hub.ReadRequest{Channels: "a|b"})
	if got := channelIDs(r); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("read of a deleted and a live channel: channels %q, want [b]", got)
	}

	// The id is free again, without the old messages or settings.
	mustRegister(t, h, "a", true, 3)
	if cs, _ := channelStatus(t, h, "a"); cs.MessagesCount != 0 || !cs.UseSessions || cs.MaxMessages != 3 {
		t.Fatalf("re-registered channel: %+v", cs)
	}
}

// Deleting a channel answers the reads held on it at once, without messages;
// reads held on other channels stay held.
func (s *suite) testDeleteReleasesHeldReads(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "b", false, 10)
	ctx := context.Background()
	onA := startRead(ctx, h, hub.ReadRequest{Channels: "a"}, nil)
	onAB := startRead(ctx, h, hub.ReadRequest{Channels: "a|b"}, nil)
	onB := startRead(ctx, h, hub.ReadRequest{Channels: "b"}, nil)
	waitHeld(t, h, 3)

	if removed, err := h.DeleteChannel(ctx, "a"); err != nil || !removed {
		t.Fatalf("deleting: removed %v, error %v", removed, err)
	}
	var last int64
	for name, p := range map[string]pending{"a": onA, "a|b": onAB} {
		r, err := p.wait(t)
		if err != nil {
			t.Fatalf("read on %s: %v", name, err)
		}
		if r.Reason != hub.ReleasedDeleted || r.HasMessages() || r.NotifiedAt != 0 {
			t.Fatalf("read on %s released by %s with messages %v (NotifiedAt %d), want deletion and none, and no delivery", name, r.Reason, r.HasMessages(), r.NotifiedAt)
		}
		last = r.LastID
	}
	waitHeld(t, h, 1)

	// The read on b was not disturbed: it gets b's next message.
	m := mustPublish(t, h, "b", "for b")
	r, err := onB.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := messagesOf(r, "b"); r.Reason != hub.ReleasedMessages || !slices.Equal(ids(got), []int64{m.ID}) {
		t.Fatalf("read on b released by %s with %v, want [%d]", r.Reason, ids(got), m.ID)
	}
	// The released reader continues from its last_id and misses nothing.
	r = mustRead(t, h, hub.ReadRequest{Channels: "a|b", Since: last})
	if got, _ := messagesOf(r, "b"); !slices.Equal(channelIDs(r), []string{"b"}) || !slices.Equal(ids(got), []int64{m.ID}) {
		t.Fatalf("continuing after the deletion: channels %q ids %v, want b with [%d]", channelIDs(r), ids(got), m.ID)
	}
}

// A publish answers every read held on its channel with exactly the new
// message, and no read held elsewhere.
func (s *suite) testHeldReadReleasedByPublish(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "b", false, 10)
	old := mustPublish(t, h, "a", "old")
	ctx := context.Background()
	var onA []pending
	for range 5 {
		onA = append(onA, startRead(ctx, h, hub.ReadRequest{Channels: "a", Since: old.ID}, nil))
	}
	onB := startRead(ctx, h, hub.ReadRequest{Channels: "b", Since: old.ID}, nil)
	waitHeld(t, h, 6)

	publishing := time.Now()
	m := mustPublish(t, h, "a", "new")
	for i, p := range onA {
		r, err := p.wait(t)
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
		got, _ := messagesOf(r, "a")
		if r.Reason != hub.ReleasedMessages || len(got) != 1 || got[0].ID != m.ID || got[0].Content() != "new" {
			t.Fatalf("reader %d released by %s with %v, want exactly [%d]", i, r.Reason, ids(got), m.ID)
		}
		if r.LastID != m.ID || r.Since != old.ID {
			t.Fatalf("reader %d: since %d last_id %d, want %d and %d", i, r.Since, r.LastID, old.ID, m.ID)
		}
		// The delivery latency runs from the hub learning of the publish,
		// not from the read's start, which came before the publish.
		notified := r.NotifiedAt.Elapsed()
		if sincePublish := time.Since(publishing); r.NotifiedAt == 0 || notified > sincePublish {
			t.Fatalf("reader %d: notified %v ago (NotifiedAt %d), but the publish began %v ago", i, notified, r.NotifiedAt, sincePublish)
		}
	}
	// A read answered at once was not held, so it is no delivery.
	if r := mustRead(t, h, hub.ReadRequest{Channels: "a", Since: old.ID}); r.NotifiedAt != 0 {
		t.Fatalf("read answered at once: NotifiedAt %d, want 0", r.NotifiedAt)
	}
	waitHeld(t, h, 1)
	mb := mustPublish(t, h, "b", "for b")
	r, err := onB.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := messagesOf(r, "b"); !slices.Equal(ids(got), []int64{mb.ID}) {
		t.Fatalf("read on b: %v, want [%d]", ids(got), mb.ID)
	}
}

// At http_timeout a held read is answered without messages and with a
// last_id from which the next read misses nothing.
func (s *suite) testHeldReadTimeout(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: shortHold})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "b", false, 10)
	m1 := mustPublish(t, h, "a", "seen")
	start := time.Now()
	p := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Since: m1.ID}, nil)
	waitHeld(t, h, 1)
	// Traffic on a channel the read does not name does not answer it.
	mustPublish(t, h, "b", "elsewhere")

	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != hub.ReleasedTimeout || r.HasMessages() || r.NotifiedAt != 0 {
		t.Fatalf("released by %s with messages %v (NotifiedAt %d), want a timeout without, and no delivery", r.Reason, r.HasMessages(), r.NotifiedAt)
	}
	if elapsed := time.Since(start); elapsed < shortHold {
		t.Fatalf("answered after %v, before http_timeout %v", elapsed, shortHold)
	}
	if r.LastID < m1.ID {
		t.Fatalf("last_id %d, want at least %d", r.LastID, m1.ID)
	}
	m2 := mustPublish(t, h, "a", "next")
	r = mustRead(t, h, hub.ReadRequest{Channels: "a", Since: r.LastID})
	if got, _ := messagesOf(r, "a"); !slices.Equal(ids(got), []int64{m2.ID}) {
		t.Fatalf("read after the timeout: %v, want [%d]", ids(got), m2.ID)
	}
}

// A held read is answered at once, without messages, when the caller's stop
// channel closes (shutdown, reload), its context ends, or the hub closes.
func (s *suite) testHeldReadStopped(t *testing.T) {
	cases := []struct {
		name    string
		release func(h *hub.Hub, stop chan struct{}, cancel context.CancelFunc)
		want    hub.ReleaseReason
	}{
		{"stop channel", func(_ *hub.Hub, stop chan struct{}, _ context.CancelFunc) { close(stop) }, hub.ReleasedStopped},
		{"context", func(_ *hub.Hub, _ chan struct{}, cancel context.CancelFunc) { cancel() }, hub.ReleasedCanceled},
		{"hub closed", func(h *hub.Hub, _ chan struct{}, _ context.CancelFunc) { _ = h.Close() }, hub.ReleasedStopped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
			mustRegister(t, h, "a", false, 10)
			m := mustPublish(t, h, "a", "seen")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := make(chan struct{})
			p := startRead(ctx, h, hub.ReadRequest{Channels: "a", Since: m.ID}, stop)
			waitHeld(t, h, 1)
			tc.release(h, stop, cancel)
			r, err := p.wait(t)
			if err != nil {
				t.Fatal(err)
			}
			if r.Reason != tc.want || r.HasMessages() || r.LastID != m.ID {
				t.Fatalf("released by %s with messages %v and last_id %d, want %s, none and %d",
					r.Reason, r.HasMessages(), r.LastID, tc.want, m.ID)
			}
			waitHeld(t, h, 0)
		})
	}
}

// max_held_connections: reads up to the limit are held, one more is refused
// at once, reads with messages are answered regardless, and a released slot
// is free again.
func (s *suite) testMaxHeld(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold, MaxHeldConnections: 2})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "full", false, 10)
	mFull := mustPublish(t, h, "full", "x")
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	first := startRead(ctx1, h, hub.ReadRequest{Channels: "a"}, nil)
	second := startRead(context.Background(), h, hub.ReadRequest{Channels: "a"}, nil)
	waitHeld(t, h, 2)

	_, err := read(h, hub.ReadRequest{Channels: "a"}, patience)
	wantErr(t, "read over the limit", err, hub.ErrTooManyHeld, "")
	if n := h.Held(); n != 2 {
		t.Fatalf("%d reads held after a refused one, want 2", n)
	}
	r := mustRead(t, h, hub.ReadRequest{Channels: "full"})
	if got, _ := messagesOf(r, "full"); !slices.Equal(ids(got), []int64{mFull.ID}) {
		t.Fatalf("read with messages at the limit: %v, want [%d]", ids(got), mFull.ID)
	}

	cancel1()
	if r, err := first.wait(t); err != nil || r.Reason != hub.ReleasedCanceled {
		t.Fatalf("canceled read: %s, %v", r.Reason, err)
	}
	waitHeld(t, h, 1)
	third := startRead(context.Background(), h, hub.ReadRequest{Channels: "a"}, nil)
	waitHeld(t, h, 2)

	m := mustPublish(t, h, "a", "for both")
	for name, p := range map[string]pending{"second": second, "third": third} {
		r, err := p.wait(t)
		if err != nil {
			t.Fatalf("%s read: %v", name, err)
		}
		if got, _ := messagesOf(r, "a"); !slices.Equal(ids(got), []int64{m.ID}) {
			t.Fatalf("%s read: %v, want [%d]", name, ids(got), m.ID)
		}
	}
}

// max_held_per_peer: a peer's reads up to the limit are held, one more is
// refused at once while other peers' reads and reads without a peer are
// held, a released slot is free again, and nothing stays counted once the
// reads end.
func (s *suite) testMaxHeldPerPeer(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold, MaxHeldPerPeer: 2})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "full", false, 10)
	mFull := mustPublish(t, h, "full", "x")
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	first := startRead(ctx1, h, hub.ReadRequest{Channels: "a", Peer: "192.0.2.1"}, nil)
	second := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Peer: "192.0.2.1"}, nil)
	other := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Peer: "192.0.2.2"}, nil)
	anonymous := startRead(context.Background(), h, hub.ReadRequest{Channels: "a"}, nil)
	waitHeld(t, h, 4)

	_, err := read(h, hub.ReadRequest{Channels: "a", Peer: "192.0.2.1"}, patience)
	wantErr(t, "read over the peer's limit", err, hub.ErrTooManyHeldByPeer, "at most 2")
	if n, byPeer := h.Held(), h.HeldBy("192.0.2.1"); n != 4 || byPeer != 2 {
		t.Fatalf("after a refused read: %d held, %d by the peer; want 4 and 2", n, byPeer)
	}
	r := mustRead(t, h, hub.ReadRequest{Channels: "full", Peer: "192.0.2.1"})
	if got, _ := messagesOf(r, "full"); !slices.Equal(ids(got), []int64{mFull.ID}) {
		t.Fatalf("read with messages at the limit: %v, want [%d]", ids(got), mFull.ID)
	}

	cancel1()
	if r, err := first.wait(t); err != nil || r.Reason != hub.ReleasedCanceled {
		t.Fatalf("canceled read: %s, %v", r.Reason, err)
	}
	waitHeld(t, h, 3)
	third := startRead(context.Background(), h, hub.ReadRequest{Channels: "a", Peer: "192.0.2.1"}, nil)
	waitHeld(t, h, 4)

	m := mustPublish(t, h, "a", "for all")
	for name, p := range map[string]pending{"second": second, "third": third, "other": other, "anonymous": anonymous} {
		r, err := p.wait(t)
		if err != nil {
			t.Fatalf("%s read: %v", name, err)
		}
		if got, _ := messagesOf(r, "a"); !slices.Equal(ids(got), []int64{m.ID}) {
			t.Fatalf("%s read: %v, want [%d]", name, ids(got), m.ID)
		}
	}
	waitHeld(t, h, 0)
	if a, b := h.HeldBy("192.0.2.1"), h.HeldBy("192.0.2.2"); a != 0 || b != 0 {
		t.Fatalf("reads still counted after they ended: %d and %d", a, b)
	}
}
