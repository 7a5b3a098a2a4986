package main

import "testing"

func TestTallyAccounting(t *testing.T) {
	// 3 readers, 130 messages (more than two words of bits per reader).
	const readers, messages = 3, 130
	tl := newTally(readers, messages)
	// Message seq is owed to every reader; 0..129 are acknowledged except
	// 129, whose publish failed.
	acked := make([]bool, messages)
	for i := range 129 {
		acked[i] = true
	}
	owed := func(int) int { return readers }

	// Reader 0 gets everything, reader 1 everything but 64 and 100,
	// reader 2 everything, with 5, 63 and 128 twice.
	for seq := range messages {
		for r := range readers {
			if r == 1 && (seq == 64 || seq == 100) {
				continue
			}
			if tl.deliver(r, seq) {
				t.Fatalf("first delivery of %d to reader %d counted as a duplicate", seq, r)
			}
		}
	}
	for _, seq := range []int{5, 63, 128} {
		if !tl.deliver(2, seq) {
			t.Errorf("second delivery of %d to reader 2 not counted as a duplicate", seq)
		}
	}
	if !tl.has(1, 63) || tl.has(1, 64) {
		t.Errorf("has(1, 63) = %v, has(1, 64) = %v; want true, false", tl.has(1, 63), tl.has(1, 64))
	}
	if got := tl.receivers(64); got != 2 {
		t.Errorf("receivers(64) = %d, want 2", got)
	}

	got := tl.count(acked, owed)
	want := deliveryCounts{
		Expected:       129 * 3,
		Delivered:      129*3 - 2,
		Lost:           2,
		Duplicated:     3,
		Unacknowledged: 3, // message 129 reached all three readers anyway
	}
	if got != want {
		t.Errorf("count = %+v, want %+v", got, want)
	}
}

// Readers subscribe to channels unevenly when -channels-per-read varies;
// the expected count follows the subscribers of each message's channel.
func TestTallyExpectedFollowsSubscribers(t *testing.T) {
	tl := newTally(4, 4)
	subs := []int{1, 3}
	owed := func(seq int) int { return subs[seq%2] }
	for r := range 3 {
		tl.deliver(r, 1) // channel 1: all three subscribers
	}
	tl.deliver(0, 0) // channel 0: its one subscriber
	tl.deliver(1, 3) // channel 1: one of three
	got := tl.count([]bool{true, true, false, true}, owed)
	want := deliveryCounts{Expected: 1 + 3 + 3, Delivered: 1 + 3 + 1, Lost: 2}
	if got != want {
		t.Errorf("count = %+v, want %+v", got, want)
	}
}

func TestTallyBytes(t *testing.T) {
	if got, want := tallyBytes(15000, 200), int64(15000*4*8+200*8); got != want {
		t.Errorf("tallyBytes(15000, 200) = %d, want %d", got, want)
	}
}

func TestErrorCounts(t *testing.T) {
	var e errorCounts
	if m := e.snapshot(); len(m) != 0 {
		t.Errorf("empty snapshot = %v", m)
	}
	e.add("http_503")
	e.add("http_503")
	e.add("timeout")
	m := e.snapshot()
	if m["http_503"] != 2 || m["timeout"] != 1 || e.total() != 3 {
		t.Errorf("snapshot = %v, total %d; want http_503 2, timeout 1, total 3", m, e.total())
	}
	m["timeout"] = 99
	if e.snapshot()["timeout"] != 1 {
		t.Error("the snapshot shares memory with the counts")
	}
}
