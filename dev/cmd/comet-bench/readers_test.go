package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestReceiveAccounting(t *testing.T) {
	const run = "0a1b2c3d"
	p := &readerPool{
		channels: []string{"c0", "c1"}, perRead: 2, runID: run, clock: newRunClock(),
		sent: make([]atomic.Int64, 6), warm: 2, tally: newTally(1, 6), latency: newHistogram(), errs: &errorCounts{},
	}
	for seq := range p.sent {
		p.sent[seq].Store(p.clock.now())
	}
	lastID := make([]int64, 2)
	now := p.clock.now()
	// receive delivers message seq of this run, with message id id.
	receive := func(i, c, slot, seq int, id int64) {
		p.receive(i, c, slot, messageContent(run, seq, time.Now(), 0), id, lastID, now)
	}
	// Channel c1 (slot 1) gets odd messages, c0 even ones.
	receive(0, 0, 0, 0, 100) // warm-up: counted, not timed
	receive(0, 1, 1, 3, 103)
	receive(0, 1, 1, 3, 103) // duplicate
	receive(0, 1, 1, 1, 101) // older than 103 on c1: reordered, warm-up
	receive(0, 0, 0, 4, 104)
	receive(0, 0, 0, 5, 105)                               // odd message on c0: wrong channel
	p.receive(0, 0, 0, "someone else's", 106, lastID, now) // foreign
	receive(0, 0, 0, 9, 109)                               // seq beyond this run: foreign
	p.receive(0, 0, 0, messageContent("ffffffff", 2, time.Now(), 0), 110, lastID, now)

	if got := p.tally.delivered.Load(); got != 4 {
		t.Errorf("delivered = %d, want 4 (0, 1, 3, 4)", got)
	}
	if got := p.tally.duplicated.Load(); got != 1 {
		t.Errorf("duplicated = %d, want 1", got)
	}
	if got := p.reordered.Load(); got != 1 {
		t.Errorf("reordered = %d, want 1", got)
	}
	if got := p.foreign.Load(); got != 3 {
		t.Errorf("foreign = %d, want 3", got)
	}
	if got := p.errs.snapshot()["read_wrong_channel"]; got != 1 {
		t.Errorf("wrong-channel errors = %d, want 1", got)
	}
	if got := p.latency.summary().Count; got != 2 {
		t.Errorf("timed deliveries = %d, want 2 (3 and 4; 0 and 1 are warm-up)", got)
	}
}
