package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
)

// flights lets held reads that a publish woke together share one store read
// when they ask the same question (same channels, client and since), as the
// readers of one busy channel do. A publish to a channel with thousands of
// readers then costs the store a handful of reads, not thousands, which
// matters most when each read is a round trip to Redis.
//
// A woken read may only join a store read that started after the event that
// woke it: one that started earlier may predate the message. Events are
// numbered (Hub.events) before they wake anyone, so a read woken by event n
// joins only flights started when the count was already n or more.
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
	started uint64 // event count when the store read began
	done    chan struct{}
	res     ReadResult
	err     error
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
func flightKey(q ReadQuery) string {
	n := 24 + len(q.ClientID)
	for _, c := range q.Channels {
		n += len(c) + 1
	}
	b := make([]byte, 0, n)
	b = appendUint(b, uint64(q.Since))
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

// reread takes a snapshot for a read woken when the event count was seen.
func (h *Hub) reread(ctx context.Context, key string, q ReadQuery, exp Expiry, seen uint64) (ReadResult, error) {
	s := &h.flights.shards[maphash.String(h.flights.seed, key)%flightShards]
	s.mu.Lock()
	if f := s.m[key]; f != nil && f.started >= seen {
		s.mu.Unlock()
		if testHookJoined != nil {
			testHookJoined()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return ReadResult{}, ctx.Err()
		}
		// The leader's request may have gone away mid-read; that is not
		// this read's failure.
		if !errors.Is(f.err, context.Canceled) && !errors.Is(f.err, context.DeadlineExceeded) {
			return f.res, f.err
		}
		return h.store.Read(ctx, q, exp)
	}
	f := &flight{started: h.events.Load(), done: make(chan struct{})}
	s.m[key] = f
	s.mu.Unlock()

	f.res, f.err = h.store.Read(ctx, q, exp)

	s.mu.Lock()
	if s.m[key] == f {
		delete(s.m, key)
	}
	s.mu.Unlock()
	close(f.done)
	return f.res, f.err
}
