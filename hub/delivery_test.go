package hub

import (
	"context"
	"testing"
)

// A reply that carries the messages of several publishes is timed from the
// earliest of them, and the instant of an event that arrives while the
// reader looks is kept for its next look, not lost or merged into this one.
func TestNotifiedAtIsEarliestEventSinceLastLook(t *testing.T) {
	h := NewMemory(Config{})
	defer h.Close()
	ctx := context.Background()
	w := &waiter{signal: make(chan struct{}, 1)}

	w.wake(wakePublished, 1, 5)
	w.wake(wakePublished, 2, 9)
	if r := h.wait(ctx.Done(), w, nil, nil); r != lookAgain || w.notifiedAt != 5 {
		t.Fatalf("after events at 5 and 9: %v, notified at %d, want to look again for 5", r, w.notifiedAt)
	}
	// The reader is looking now; an event meanwhile signals it again.
	w.wake(wakePublished, 3, 12)
	if r := h.wait(ctx.Done(), w, nil, nil); r != lookAgain || w.notifiedAt != 12 {
		t.Fatalf("after an event at 12 during the look: %v, notified at %d, want to look again for 12", r, w.notifiedAt)
	}
}

// Only replies of reads released by a publish are deliveries.
func TestObserveDelivery(t *testing.T) {
	var s Stats
	s.ObserveDelivery(0)
	if count, _, _ := s.DeliveryLatency.Snapshot(); count != 0 {
		t.Fatalf("a reply that no publish released was counted: %d", count)
	}
	s.ObserveDelivery(now())
	if count, sum, _ := s.DeliveryLatency.Snapshot(); count != 1 || sum < 0 || sum > 1 {
		t.Fatalf("one delivery just now: count %d sum %vs, want 1 and under a second", count, sum)
	}
}
