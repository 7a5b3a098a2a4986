package hub

import (
	"testing"
	"time"
)

// patience bounds every wait of the package's internal tests: what they
// wait for is the behaviour under test, so not getting it within patience
// is a failure with a message, never a hang.
const patience = 10 * time.Second

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("%s: not closed within %v", what, patience)
	}
}

// receive waits for a value on ch, failing the test with what after patience.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("%s: not within %v", what, patience)
		panic("unreachable")
	}
}

// waitHeld waits until h holds n reads. Nothing signals that, so it polls
// the counter, within patience.
func waitHeld(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for h.Held() != n {
		if time.Now().After(deadline) {
			t.Fatalf("held reads: %d, want %d within %v", h.Held(), n, patience)
		}
		time.Sleep(time.Millisecond)
	}
}
