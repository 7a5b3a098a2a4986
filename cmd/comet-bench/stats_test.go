package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramExactBelow128Microseconds(t *testing.T) {
	var h histogram
	for us := 1; us <= 100; us++ {
		h.record(time.Duration(us) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1 * time.Microsecond},
		{0.50, 50 * time.Microsecond},
		{0.90, 90 * time.Microsecond},
		{0.99, 99 * time.Microsecond},
		{1, 100 * time.Microsecond},
	} {
		if got := h.quantile(tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if h.count() != 100 {
		t.Errorf("count = %d, want 100", h.count())
	}
}

// Percentiles of large values are never below the true one and at most one
// bucket width (1/64) above it.
func TestHistogramPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var samples []time.Duration
	for range 20000 {
		// Log-uniform from 100 µs to 100 s, to cross many bucket sizes.
		d := time.Duration(math.Exp(r.Float64()*math.Log(1e6)) * float64(100*time.Microsecond))
		d = d.Truncate(time.Microsecond)
		samples = append(samples, d)
		h.record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999} {
		want := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.quantile(q)
		if got < want || float64(got) > float64(want)*(1+1.0/64) {
			t.Errorf("quantile(%v) = %v, true value %v: outside [true, true+1/64]", q, got, want)
		}
	}
	if got, want := h.quantile(1), samples[len(samples)-1]; got != want {
		t.Errorf("max = %v, want exactly %v", got, want)
	}
}

// Every value falls in a bucket whose top is at or above it and whose
// predecessor's top is below it, up to the largest value.
func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<20 + 1, 1<<40 - 1, math.MaxInt64, math.MaxUint64}
	for v := uint64(1); v < 1<<62; v = v*3 + 1 {
		values = append(values, v-1, v, v+1)
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, histBuckets)
		}
		if hi := bucketHigh(i); hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("bucketHigh(%d) = %d, not below %d, which is in bucket %d", i-1, bucketHigh(i-1), v, i)
		}
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	var h histogram
	if s := h.summary(); s != (latencySummary{}) {
		t.Errorf("empty summary = %+v, want zeros", s)
	}
	// A clock step back must not panic or count as a huge value.
	h.record(-time.Second)
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("quantile of a negative sample = %v, want 0", got)
	}
}

func TestHistogramConcurrentRecords(t *testing.T) {
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.count() != 8000 {
		t.Errorf("count = %d, want 8000", h.count())
	}
	if got, want := h.quantile(1), 7999*time.Microsecond; got != want {
		t.Errorf("max = %v, want %v", got, want)
	}
}

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
