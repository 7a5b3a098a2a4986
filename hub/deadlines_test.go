package hub

import (
	"sync"
	"testing"
	"time"
)

func slotCount(dl *deadlines) int {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return len(dl.slots)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Each deadline's channel closes once its time has passed, never before,
// whatever order they were asked for in.
func TestDeadlinesCloseAfterTheirTime(t *testing.T) {
	dl := newDeadlines(5 * time.Millisecond)
	defer dl.stop()
	// Out of order, so that later requests must re-arm for earlier slots,
	// and spread over many slots, so that each firing must arm the next.
	durations := []time.Duration{120, 10, 60, 0, 35, 90, 10, 200, 1, 150}
	start := time.Now()
	var wg sync.WaitGroup
	for _, ms := range durations {
		d := ms * time.Millisecond
		ch := dl.after(d)
		wg.Go(func() {
			waitClosed(t, ch, d.String())
			if elapsed := time.Since(start); elapsed < d {
				t.Errorf("deadline %v closed after %v", d, elapsed)
			}
		})
	}
	wg.Wait()
	if n := slotCount(dl); n != 0 {
		t.Fatalf("%d slots left after every deadline passed", n)
	}
}

// A deadline asked for after a much later one is not kept waiting for it.
func TestDeadlinesEarlierAfterLater(t *testing.T) {
	dl := newDeadlines(10 * time.Millisecond)
	defer dl.stop()
	late := dl.after(time.Hour)
	early := dl.after(20 * time.Millisecond)
	waitClosed(t, early, "20ms deadline asked for after a 1h one")
	if isClosed(late) {
		t.Fatal("1h deadline closed with the 20ms one")
	}
	// And a new deadline after the early one fired is armed too.
	waitClosed(t, dl.after(20*time.Millisecond), "deadline asked for after a firing")
}

// Deadlines in one slot share a channel: thousands of held reads cost one
// map entry and one timer per slot.
func TestDeadlinesShareSlots(t *testing.T) {
	dl := newDeadlines(time.Hour)
	defer dl.stop()
	a := dl.after(time.Minute)
	b := dl.after(time.Minute + time.Millisecond)
	if a != b {
		t.Fatal("deadlines in one slot got different channels")
	}
	if c := dl.after(3 * time.Hour); c == a {
		t.Fatal("deadlines hours apart share a channel")
	}
	if n := slotCount(dl); n != 2 {
		t.Fatalf("%d slots, want 2", n)
	}
}

// stop closes every pending deadline and every later one at once, so that
// nothing waits on a stopped hub.
func TestDeadlinesStop(t *testing.T) {
	dl := newDeadlines(10 * time.Millisecond)
	pending := []<-chan struct{}{dl.after(time.Hour), dl.after(time.Minute)}
	dl.stop()
	for i, ch := range pending {
		if !isClosed(ch) {
			t.Fatalf("pending deadline %d not closed by stop", i)
		}
	}
	if !isClosed(dl.after(time.Hour)) {
		t.Fatal("deadline asked for after stop is not closed")
	}
	dl.stop() // stopping twice is harmless
}
