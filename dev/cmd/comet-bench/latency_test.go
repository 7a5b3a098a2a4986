package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// Below 2,048 µs every microsecond is its own bucket, so the summary of
// 1..100 µs is exact: the rank of p99 of 100 samples is the 99th.
func TestHistogramSummaryExactForSmallValues(t *testing.T) {
	h := newHistogram()
	for us := 100; us >= 1; us-- {
		h.record(time.Duration(us) * time.Microsecond)
	}
	want := latencySummary{Count: 100, P50: 0.050, P90: 0.090, P99: 0.099, Max: 0.100}
	if got := h.summary(); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
}

// Percentiles and the maximum of large values are never below the true
// value and at most 0.1% above it.
func TestHistogramPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newHistogram()
	var samples []time.Duration
	for range 20000 {
		// Log-uniform from 100 µs to 100 s, to cross many bucket sizes.
		d := time.Duration(math.Exp(r.Float64()*math.Log(1e6)) * float64(100*time.Microsecond))
		d = d.Truncate(time.Microsecond)
		samples = append(samples, d)
		h.record(d)
	}
	slices.Sort(samples)
	// The nearest rank, as HdrHistogram takes it: q*n rounded half up.
	at := func(q float64) time.Duration { return samples[int(q*float64(len(samples))+0.5)-1] }
	s := h.summary()
	for _, c := range []struct {
		name string
		got  float64
		want time.Duration
	}{
		{"p50", s.P50, at(0.50)},
		{"p90", s.P90, at(0.90)},
		{"p99", s.P99, at(0.99)},
		{"max", s.Max, samples[len(samples)-1]},
	} {
		want := float64(c.want.Microseconds()) / 1000
		if c.got < want || c.got > want*(1+1e-3) {
			t.Errorf("%s = %v ms, true value %v ms: outside [true, true+0.1%%]", c.name, c.got, want)
		}
	}
	if s.Count != uint64(len(samples)) {
		t.Errorf("count = %d, want %d", s.Count, len(samples))
	}
}

func TestHistogramEmptyNegativeAndHuge(t *testing.T) {
	h := newHistogram()
	if s := h.summary(); s != (latencySummary{}) {
		t.Errorf("empty summary = %+v, want zeros", s)
	}
	// A clock step back must not panic or count as a huge value.
	h.record(-time.Second)
	if s := h.summary(); s != (latencySummary{Count: 1}) {
		t.Errorf("summary of a negative sample = %+v, want one sample of 0", s)
	}
	// Beyond the range: counted, as the largest value, not dropped.
	h.record(1000 * time.Hour)
	if s := h.summary(); s.Count != 2 || s.Max < 24*3600*1000 {
		t.Errorf("summary after a 1000 h sample = %+v, want 2 samples and max at least a day", s)
	}
}

// Readers record concurrently; run with -race.
func TestHistogramConcurrentRecords(t *testing.T) {
	h := newHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	s := h.summary()
	if s.Count != 8000 {
		t.Errorf("count = %d, want 8000", s.Count)
	}
	// 7,999 µs lies where buckets are 4 µs wide: 7,996..7,999.
	if s.Max != 7.999 {
		t.Errorf("max = %v ms, want 7.999", s.Max)
	}
}
