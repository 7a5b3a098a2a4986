package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
)

// sharedReads lets reads that ask the same question (same channels, client,
// since and size limit) at about the same time share one store read, as the
// readers of one busy channel do: all of them are woken by one publish, and
// all of them come back with the same since right after. The first such read
// leads a store read; the others follow it and take its result. A publish to
// a channel with thousands of readers then costs the store a handful of
// reads, not thousands, which matters most when each read is a round trip to
// Redis.
//
// The tick rule: a read may only take the result of a store read that began
// after the moment its snapshot must follow (the request's arrival, its
// registration for wake-ups, or the event that woke it); an earlier one may
// predate a message. Hub.ticks orders those moments: a read takes a tick at
// its moment (notifications take one before they wake anyone, Hub.notify),
// each store read takes one as it begins, and a read follows only store reads
// with a later tick.
//
// The latest store read of a question stays available to its readers
// after it ends, for as long as a read of that question is registered:
// the readers one publish woke on an inline store come one after another,
// each after the previous one's store read has ended, and a store read
// that began after the publish serves every one of them under the tick
// rule, with one result and one memo (Reply.Memo), so that they share one
// encoding of their reply too. Registered reads count themselves in their
// question's entry (join, leave); the entry goes with the last of them, so
// what is kept is bounded by the questions of the reads held. A store read
// that failed is not kept: the next read leads a new one.
type sharedReads struct {
	byKey shardedMap[questionKey, *question]
}

// forget drops r, a store read that failed, as key's latest.
func (sr *sharedReads) forget(key questionKey, r *sharedRead) {
	s := sr.byKey.shard(key)
	s.mu.Lock()
	if q := s.m[key]; q != nil && q.latest == r {
		q.latest = nil
	}
	s.mu.Unlock()
}

// question is the entry of one questionKey: the reads registered under it,
// and its latest store read.
type question struct {
	readers int
	latest  *sharedRead
}

// join counts a registered read under key.
func (sr *sharedReads) join(key questionKey) {
	s := sr.byKey.shard(key)
	s.mu.Lock()
	q := s.m[key]
	if q == nil {
		q = &question{}
		s.m[key] = q
	}
	q.readers++
	s.mu.Unlock()
}

// leave uncounts a read that join counted under key, dropping the entry
// with its last read.
func (sr *sharedReads) leave(key questionKey) {
	s := sr.byKey.shard(key)
	s.mu.Lock()
	if q := s.m[key]; q != nil {
		if q.readers--; q.readers <= 0 {
			delete(s.m, key)
		}
	}
	s.mu.Unlock()
}

// sharedRead is one store read and the reads that take its result.
type sharedRead struct {
	began uint64 // tick taken as the store read began
	done  chan struct{}
	res   ReadResult
	err   error
	// memo is what the reads that take res make of it (Reply.Memo).
	memo ReplyMemo
}

// ended reports whether the store read has ended.
func (r *sharedRead) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func newSharedReads() *sharedReads {
	sr := &sharedReads{}
	sr.byKey.init(hashQuestion)
	return sr
}

// testHookFollowed, when a test sets it, runs when a read follows another's
// store read.
var testHookFollowed func()

// questionKey identifies reads that may share a store read: those that ask
// the same question. A waiter's who is made once, when it registers
// (newQuestionKey); a stream's moves to a new since from event to event
// without building a key anew.
type questionKey struct {
	since    int64
	maxBytes int
	// who is the read's client id and channels; empty until it registers.
	who string
}

// newQuestionKey returns the key of q.
func newQuestionKey(q *ReadQuery) questionKey {
	n := len(q.ClientID)
	for _, c := range q.Channels {
		n += len(c) + 1
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(q.ClientID)
	for _, c := range q.Channels {
		b.WriteByte(0)
		b.WriteString(c)
	}
	return questionKey{since: q.Since, maxBytes: q.MaxBytes, who: b.String()}
}

// hashQuestion picks a question's shard of sharedReads.
func hashQuestion(seed maphash.Seed, k questionKey) uint64 {
	return maphash.String(seed, k.who) ^ uint64(k.since)*0x9e3779b97f4a7c15 ^ uint64(k.maxBytes)
}

// canceled reports whether err is a context's end.
func canceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// result copies an ended store read's snapshot to res and gives w its memo,
// or returns its error.
func (r *sharedRead) result(w *waiter, res *ReadResult) error {
	if r.err != nil {
		return r.err
	}
	*res = r.res
	w.memo, w.lookedAt = &r.memo, r.began
	return nil
}
