package main

import (
	"maps"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// histogram records durations in microseconds in log-linear buckets, like
// HdrHistogram with 7 significant bits: values below 128 µs are exact, larger
// ones fall in buckets 1/64 of their magnitude wide, so a percentile is never
// off by more than about 1.6%. It takes the same memory however many
// samples it sees (about 30 KiB), and is safe for concurrent use without a
// lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // exact range and buckets per doubling (x2)
	histHalf    = histSub / 2
	// 64-bit values need at most 64-histSubBits shifts.
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// bucketOf maps a value to its bucket index.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // >= 1
	sub := v >> uint(shift)              // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + int(sub-histHalf)
}

// bucketHigh is the largest value that lands in bucket i: percentiles report
// it, so they err on the slow side and never flatter the server.
func bucketHigh(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i-histSub)/histHalf + 1
	sub := uint64((i-histSub)%histHalf + histHalf)
	return (sub+1)<<uint(shift) - 1
}

// record adds one duration. Negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	h.counts[bucketOf(uint64(us))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// count is the number of recorded durations.
func (h *histogram) count() uint64 { return h.total.Load() }

// quantile returns the duration at or below which a fraction q (0..1) of the
// samples lie, with the precision described on histogram; 0 when empty. The
// maximum is exact, so quantile(1) is too.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max.Load())
	}
	// The rank of the sample wanted, 1-based, rounded up: p50 of 2 samples is
	// the first, p99 of 100 samples is the 99th.
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(bucketHigh(i)) * time.Microsecond
			// A bucket's top may lie above the largest sample in it.
			return min(v, time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// latencySummary is what a report prints of a histogram.
type latencySummary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *histogram) summary() latencySummary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latencySummary{
		Count: h.count(),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(h.quantile(1)),
	}
}

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
