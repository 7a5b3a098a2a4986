package main

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The latency histogram's range and precision.
const (
	// latencyMaxMicros is the longest latency recorded as itself (a day);
	// a longer one, which no bounded run produces, counts as a day rather
	// than being dropped.
	latencyMaxMicros = int64(24 * time.Hour / time.Microsecond)
	// latencyDigits significant digits put every percentile, and the
	// maximum, within 0.1% above the true value.
	latencyDigits = 3
)

// histogram records durations, in microseconds, for the percentiles a report
// prints. It is an HDR histogram: it takes the same memory (about 230 KiB)
// however many samples it sees. hdrhistogram-go leaves synchronization to
// its caller, and readers record concurrently, hence the lock; recording
// holds it for a few nanoseconds.
type histogram struct {
	mu  sync.Mutex
	hdr *hdrhistogram.Histogram
}

func newHistogram() *histogram {
	return &histogram{hdr: hdrhistogram.New(1, latencyMaxMicros, latencyDigits)}
}

// record adds one duration. Negative durations (a clock step back) count as
// zero.
func (h *histogram) record(d time.Duration) {
	us := min(max(d.Microseconds(), 0), latencyMaxMicros)
	h.mu.Lock()
	defer h.mu.Unlock()
	// us is within the histogram's range, the only reason RecordValue fails.
	_ = h.hdr.RecordValue(us)
}

// latencySummary is what a report prints of a histogram.
type latencySummary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summary gives the count, percentiles and maximum in milliseconds; all
// zero when nothing was recorded. A percentile is the top of the bucket its
// sample falls in, so the figures err on the slow side and never flatter
// the server.
func (h *histogram) summary() latencySummary {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return latencySummary{
		Count: uint64(h.hdr.TotalCount()),
		P50:   ms(h.hdr.ValueAtQuantile(50)),
		P90:   ms(h.hdr.ValueAtQuantile(90)),
		P99:   ms(h.hdr.ValueAtQuantile(99)),
		Max:   ms(h.hdr.Max()),
	}
}
