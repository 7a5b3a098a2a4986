package main

import (
	"maps"
	"sync"
	"sync/atomic"
)

// tally is the delivery ledger of a fan-out run: which reader saw which
// message. Readers record into it concurrently; the orchestrator asks it at
// any time whether every acknowledged message reached every reader that
// subscribed to its channel.
type tally struct {
	messages int
	// seen holds one bit per (reader, message): reader r's bits are
	// seen[r*words : (r+1)*words].
	seen  []atomic.Uint64
	words int
	// perMessage counts the distinct readers that got each message.
	perMessage []atomic.Int64
	delivered  atomic.Int64
	duplicated atomic.Int64
}

func newTally(readers, messages int) *tally {
	words := (messages + 63) / 64
	return &tally{
		messages:   messages,
		seen:       make([]atomic.Uint64, readers*words),
		words:      words,
		perMessage: make([]atomic.Int64, messages),
	}
}

// tallyBytes is the memory a tally for these sizes takes, to refuse runs
// that would not fit before allocating.
func tallyBytes(readers, messages int) int64 {
	return int64(readers)*int64((messages+63)/64)*8 + int64(messages)*8
}

// deliver records that reader got message seq, and reports whether it had
// it already.
func (t *tally) deliver(reader, seq int) (duplicate bool) {
	bit := uint64(1) << uint(seq%64)
	old := t.seen[reader*t.words+seq/64].Or(bit)
	if old&bit != 0 {
		t.duplicated.Add(1)
		return true
	}
	t.perMessage[seq].Add(1)
	t.delivered.Add(1)
	return false
}

// has reports whether reader got message seq.
func (t *tally) has(reader, seq int) bool {
	return t.seen[reader*t.words+seq/64].Load()&(uint64(1)<<uint(seq%64)) != 0
}

// receivers is how many distinct readers got message seq.
func (t *tally) receivers(seq int) int64 { return t.perMessage[seq].Load() }

// deliveryCounts is the loss and duplicate accounting of a run.
type deliveryCounts struct {
	// Expected is the sum, over acknowledged messages, of the readers
	// subscribed to the message's channel.
	Expected int64 `json:"expected"`
	// Delivered counts distinct (reader, acknowledged message) receipts.
	Delivered int64 `json:"delivered"`
	// Lost is Expected - Delivered.
	Lost int64 `json:"lost"`
	// Duplicated counts receipts of a message a reader had already got.
	Duplicated int64 `json:"duplicated"`
	// Unacknowledged counts receipts of messages whose publish request
	// failed (the server may have stored them before the failure).
	Unacknowledged int64 `json:"unacknowledged"`
}

// count compares the ledger with what should have arrived: acked[seq] says
// whether the publish of seq was acknowledged, and subscribers(seq) how many
// readers read its channel.
func (t *tally) count(acked []bool, subscribers func(seq int) int) deliveryCounts {
	var c deliveryCounts
	for seq, ok := range acked {
		got := t.perMessage[seq].Load()
		if !ok {
			c.Unacknowledged += got
			continue
		}
		c.Expected += int64(subscribers(seq))
		c.Delivered += got
	}
	c.Lost = c.Expected - c.Delivered
	c.Duplicated = t.duplicated.Load()
	return c
}

// errorCounts counts errors by kind ("http_503", "timeout", ...).
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
	n  atomic.Int64
}

func (e *errorCounts) add(kind string) {
	e.n.Add(1)
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[kind]++
	e.mu.Unlock()
}

func (e *errorCounts) total() int64 { return e.n.Load() }

// snapshot returns a copy of the counts.
func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.m)
}
