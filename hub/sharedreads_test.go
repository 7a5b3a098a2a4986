package hub

import (
	"context"
	"sync/atomic"
	"testing"
)

// gatedStore is a memory store whose next Read after arm waits at a gate,
// so a test can hold a store read in progress while events happen. Arming
// before the event that causes the read, and announcing on a buffered
// channel, means the order in which the goroutines run cannot skip the gate.
type gatedStore struct {
	*MemoryStore
	armed   atomic.Bool
	entered chan struct{} // one value per gated read
	gate    chan struct{} // closed to let gated reads go on
}

// arm makes the next Read announce itself on entered and wait for the gate.
func (s *gatedStore) arm() { s.armed.Store(true) }

func (s *gatedStore) Read(ctx context.Context, q ReadQuery, exp Expiry) (ReadResult, error) {
	if s.armed.CompareAndSwap(true, false) {
		s.entered <- struct{}{}
		<-s.gate
	}
	return s.MemoryStore.Read(ctx, q, exp)
}

// awaitEntered waits for the armed read to reach the store.
func (s *gatedStore) awaitEntered(t *testing.T, what string) {
	t.Helper()
	receive(t, s.entered, what)
}

// remoteStore hides that its store is a memory store, as a network store
// would be: the hub runs its reads aside (see Hub.snapshot).
type remoteStore struct{ Store }

// newGatedHub returns a hub on a gated memory store, with a channel "c";
// with aside, the hub takes the store for a network one.
func newGatedHub(t *testing.T, aside bool) (*Hub, *gatedStore) {
	t.Helper()
	var store *gatedStore
	h, err := New("shared-reads", Config{}, func(o StoreOptions) (Store, error) {
		store = &gatedStore{MemoryStore: NewMemoryStore(o), entered: make(chan struct{}, 1), gate: make(chan struct{})}
		if aside {
			return remoteStore{store}, nil
		}
		return store, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if h.inlineReads == aside {
		t.Fatalf("hub reads inline: %v, want %v", h.inlineReads, !aside)
	}
	if err := h.RegisterChannel(context.Background(), "c", false, 0); err != nil {
		t.Fatal(err)
	}
	return h, store
}

// forEachReadMode runs test with store reads inline and aside.
func forEachReadMode(t *testing.T, test func(t *testing.T, aside bool)) {
	t.Run("inline", func(t *testing.T) { test(t, false) })
	t.Run("aside", func(t *testing.T) { test(t, true) })
}

// readWaiter returns the waiter of an anonymous read of channel since 0:
// one per read, as each read has its own.
func readWaiter(h *Hub, channel string) *waiter {
	w := &waiter{q: ReadQuery{Channels: []string{channel}}, exp: h.Config().expiry()}
	w.key = newQuestionKey(&w.q)
	h.sharedReads.join(w.key) // as a registered read does
	return w
}

// A read woken by an event must not take the answer of a store read that
// began before that event: it could miss the message that woke it.
func TestSnapshotFollowsOnlyStoreReadsBegunAfterItsEvent(t *testing.T) {
	forEachReadMode(t, testSnapshotFollowsOnlyStoreReadsBegunAfterItsEvent)
}

func testSnapshotFollowsOnlyStoreReadsBegunAfterItsEvent(t *testing.T, aside bool) {
	h, store := newGatedHub(t, aside)
	ctx := context.Background()

	// An early store read, begun before the publish, waits in the store.
	store.arm()
	early := make(chan ReadResult, 1)
	go func() {
		var res ReadResult
		_ = h.snapshot(ctx, readWaiter(h, "c"), &res, h.ticks.Add(1))
		early <- res
	}()
	store.awaitEntered(t, "the early store read reaching the store")

	m, err := h.Publish(ctx, "c", "news")
	if err != nil {
		t.Fatal(err)
	}
	// A read woken by that publish gets its own snapshot, with the message.
	done := make(chan ReadResult, 1)
	go func() {
		var res ReadResult
		_ = h.snapshot(ctx, readWaiter(h, "c"), &res, h.ticks.Add(1))
		done <- res
	}()
	res := receive(t, done, "the woken read, which must not follow a store read that began before its event")
	if !res.HasMessages() || res.Channels[0].Messages[0].ID != m.ID {
		t.Fatalf("woken read missed the message: %+v", res)
	}
	close(store.gate)
	receive(t, early, "the early store read after opening the gate")
}

// Reads woken by the same event share one store read.
func TestSnapshotsShareAStoreReadBegunAfterTheirEvent(t *testing.T) {
	forEachReadMode(t, testSnapshotsShareAStoreReadBegunAfterTheirEvent)
}

func testSnapshotsShareAStoreReadBegunAfterTheirEvent(t *testing.T, aside bool) {
	h, store := newGatedHub(t, aside)
	ctx := context.Background()
	if _, err := h.Publish(ctx, "c", "news"); err != nil {
		t.Fatal(err)
	}
	after := h.ticks.Add(1)

	followed := make(chan struct{}, 2)
	testHookFollowed = func() { followed <- struct{}{} }
	defer func() { testHookFollowed = nil }()

	results := make(chan ReadResult, 2)
	snapshot := func() {
		var res ReadResult
		_ = h.snapshot(ctx, readWaiter(h, "c"), &res, after)
		results <- res
	}
	store.arm()
	go snapshot()
	store.awaitEntered(t, "the leader reaching the store")
	go snapshot()
	receive(t, followed, "the follower following the leader's store read")
	close(store.gate)
	a := receive(t, results, "the first shared snapshot")
	b := receive(t, results, "the second shared snapshot")
	if !a.HasMessages() || !b.HasMessages() || &a.Channels[0] != &b.Channels[0] {
		t.Fatalf("want one shared snapshot, got %+v and %+v", a, b)
	}
}

// Reads woken by one publish share one store read: each one's snapshot must
// follow the publish, not its own wake-up, which comes later.
func TestWokenReadsShareAStoreRead(t *testing.T) {
	forEachReadMode(t, testWokenReadsShareAStoreRead)
}

func testWokenReadsShareAStoreRead(t *testing.T, aside bool) {
	h, store := newGatedHub(t, aside)
	ctx := context.Background()
	replies := make(chan Reply, 2)
	for range 2 {
		go func() {
			r, err := h.Read(ctx, ReadRequest{Channels: "c"}, nil)
			if err != nil {
				t.Error(err)
			}
			replies <- r
		}()
	}
	waitHeld(t, h, 2)
	// Armed and hooked only now, so that the reads' first looks, which may
	// share a store read too, do not count: a read counts as held only after
	// its last look.
	followed := make(chan struct{}, 2)
	testHookFollowed = func() { followed <- struct{}{} }
	defer func() { testHookFollowed = nil }()
	store.arm()

	m, err := h.Publish(ctx, "c", "news")
	if err != nil {
		t.Fatal(err)
	}
	store.awaitEntered(t, "a woken read leading a store read into the store")
	receive(t, followed, "the other woken read following the store read that began after the publish")
	close(store.gate)
	for range 2 {
		if r := receive(t, replies, "the woken reads' replies"); !r.HasMessages() || r.Channels[0].Messages[0].ID != m.ID {
			t.Fatalf("woken read got %+v, want message %d", r, m.ID)
		}
	}
}
