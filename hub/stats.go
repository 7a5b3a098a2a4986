package hub

import (
	"math"
	"sync/atomic"
	"time"
)

// Stats are a hub's running totals since it was created. They survive
// configuration reloads because the hub does.
type Stats struct {
	// Published counts messages published through this hub.
	Published atomic.Int64
	// Replayed counts publishes that published nothing because their
	// idempotency key had been used (retries of a publish that was stored).
	Replayed atomic.Int64
	// StoreLatency is the time store calls take.
	StoreLatency LatencyHistogram
	// DeliveryLatency is, for each held read released by a publish, the
	// time from the hub learning of the publish (the store's notification,
	// on this node) to the read's reply having been written; the HTTP layer
	// adds to it through ObserveDelivery. It includes waking the reader,
	// its store read and encoding the reply, not the publish's own store
	// call (StoreLatency) nor, on a shared store, the notification's way
	// from the publishing node.
	DeliveryLatency LatencyHistogram
}

// ObserveDelivery records the delivery of a reply whose NotifiedAt is
// notifiedAt, now that it has been written. Replies of reads that were not
// released by a publish (zero NotifiedAt) are not deliveries and are ignored.
func (s *Stats) ObserveDelivery(notifiedAt Instant) {
	if notifiedAt != 0 {
		s.DeliveryLatency.Observe(notifiedAt.Elapsed())
	}
}

// Instant is a reading of the hub's monotonic clock, in nanoseconds since the
// process started: an int64 rather than a time.Time, so that a waiter can
// hold one in an atomic and a reply carry one in a word. The zero Instant is
// no reading.
type Instant int64

// clockStart anchors Instants; its monotonic reading makes time.Since immune
// to wall clock steps.
var clockStart = time.Now()

// now returns the current Instant, never zero.
func now() Instant { return Instant(max(time.Since(clockStart), 1)) }

// Elapsed returns the time since i.
func (i Instant) Elapsed() time.Duration { return time.Duration(now() - i) }

// latencyBuckets are the upper bounds, in seconds, of LatencyHistogram.
var latencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// LatencyHistogram counts durations in fixed buckets without locks.
type LatencyHistogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNS  atomic.Int64
}

// Observe records one duration.
func (l *LatencyHistogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sumNS.Add(int64(d))
}

// Snapshot returns the count, the sum in seconds and the cumulative bucket
// counts by upper bound, as Prometheus histograms want them.
func (l *LatencyHistogram) Snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(latencyBuckets))
	for i, upper := range latencyBuckets {
		count += l.counts[i].Load()
		buckets[upper] = count
	}
	count += l.counts[len(latencyBuckets)].Load()
	buckets[math.Inf(1)] = count
	return count, float64(l.sumNS.Load()) / 1e9, buckets
}
