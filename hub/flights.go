package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// flights lets reads that ask the same question (same channels, client and
// since) at about the same time share one store read, as the readers of one
// busy channel do: all of them are woken by one publish, and all of them
// come back with the same since right after. A publish to a channel with
// thousands of readers then costs the store a handful of reads, not
// thousands, which matters most when each read is a round trip to Redis.
//
// A read may only take the answer of a store read that began after the
// moment its snapshot must follow: the request's arrival, its registration
// for wake-ups, or the event that woke it; an earlier one may predate a
// message. Hub.ticks orders those moments: a read takes a tick at its moment
// (notifications take one before they wake anyone), each store read takes
// one as it begins, and a read joins only store reads with a later tick.
type flights struct {
	seed   maphash.Seed
	shards [flightShards]flightShard
}

const flightShards = 64

type flightShard struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	started uint64 // tick taken as the store read began
	done    chan struct{}
	res     ReadResult
	err     error
}

func (fl *flights) shard(key string) *flightShard {
	return &fl.shards[maphash.String(fl.seed, key)%flightShards]
}

func newFlights() *flights {
	fl := &flights{seed: maphash.MakeSeed()}
	for i := range fl.shards {
		fl.shards[i].m = make(map[string]*flight)
	}
	return fl
}

// testHookJoined, when a test sets it, runs when a read joins a flight.
var testHookJoined func()

// flightKey identifies reads that may share a snapshot.
func flightKey(q *ReadQuery) string {
	n := 32 + len(q.ClientID)
	for _, c := range q.Channels {
		n += len(c) + 1
	}
	b := make([]byte, 0, n)
	b = appendUint(b, uint64(q.Since))
	b = appendUint(b, uint64(q.MaxBytes))
	b = append(b, 0)
	b = append(b, q.ClientID...)
	for _, c := range q.Channels {
		b = append(b, 0)
		b = append(b, c...)
	}
	return string(b)
}

func appendUint(b []byte, v uint64) []byte {
	for i := 0; i < 8; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// reread takes a snapshot for w whose snapshot must follow tick mine, into
// *res; on error it leaves *res as it was.
//
// It runs under every held read's goroutine (see ReadInto), so it stays
// lean: joining a flight, the cold branch, is a call of its own, and so are
// the reads of stores other than memory (see rereadAside).
func (h *Hub) reread(ctx context.Context, w *waiter, res *ReadResult, mine uint64) error {
	if !h.inlineReads {
		return h.rereadAside(ctx, w, res, mine)
	}
	s := h.flights.shard(w.key)
	s.mu.Lock()
	if f := s.m[w.key]; f != nil && f.started > mine {
		s.mu.Unlock()
		return h.join(ctx, f, w, res)
	}
	f := &flight{started: h.ticks.Add(1), done: make(chan struct{})}
	s.m[w.key] = f
	s.mu.Unlock()
	// fly's body, inline: a call to fly would add its frame under the
	// store's.
	start := time.Now()
	r, err := h.store.Store.Read(ctx, w.q, w.exp)
	f.res.Since, f.res.LastID, f.res.Channels, f.err = r.Since, r.LastID, r.Channels, err
	h.store.observe(start)
	s.land(w.key, f)
	return f.result(res)
}

// join waits for the snapshot of a flight that began after the read's moment.
func (h *Hub) join(ctx context.Context, f *flight, w *waiter, res *ReadResult) error {
	if testHookJoined != nil {
		testHookJoined()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The leader's request may have gone away mid-read; that is not this
	// read's failure.
	if errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded) {
		r, err := h.store.Read(ctx, w.q, w.exp)
		if err != nil {
			return err
		}
		*res = r
		return nil
	}
	return f.result(res)
}

// rereadAside is reread for stores whose reads go over the network: a
// client's calls (Redis's) take stacks deep enough to double a held read's
// goroutine stack for as long as it is held, so the store read of a flight
// this read leads runs on a goroutine of its own, which costs a microsecond
// against a round trip of a hundred, and this read waits for it as for any
// flight.
func (h *Hub) rereadAside(ctx context.Context, w *waiter, res *ReadResult, mine uint64) error {
	for {
		s := h.flights.shard(w.key)
		s.mu.Lock()
		f := s.m[w.key]
		lead := f == nil || f.started <= mine
		if lead {
			f = &flight{started: h.ticks.Add(1), done: make(chan struct{})}
			s.m[w.key] = f
		}
		s.mu.Unlock()
		if lead {
			go h.fly(ctx, s, w, f)
		} else if testHookJoined != nil {
			testHookJoined()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// The leader's request may have gone away mid-read; that is not
		// this read's failure: look again.
		if lead || !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return f.result(res)
		}
	}
}

// fly runs a flight's store read, timed here rather than through
// timedStore.Read, which would add a frame under held reads, and lands it.
func (h *Hub) fly(ctx context.Context, s *flightShard, w *waiter, f *flight) {
	start := time.Now()
	r, err := h.store.Store.Read(ctx, w.q, w.exp)
	// Field by field: assigning the whole result through f takes a
	// temporary copy in the frame.
	f.res.Since, f.res.LastID, f.res.Channels, f.err = r.Since, r.LastID, r.Channels, err
	h.store.observe(start)
	s.land(w.key, f)
}

// land ends a flight whose result is in: later reads start flights of their
// own, and those waiting for it go on.
func (s *flightShard) land(key string, f *flight) {
	s.mu.Lock()
	if s.m[key] == f {
		delete(s.m, key)
	}
	s.mu.Unlock()
	close(f.done)
}

// result copies a landed flight's snapshot to res, or returns its error.
func (f *flight) result(res *ReadResult) error {
	if f.err != nil {
		return f.err
	}
	*res = f.res
	return nil
}
