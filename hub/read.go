package hub

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ReadRequest is a read as the API receives it.
type ReadRequest struct {
	// Channels is the channel list, ids separated by '|'.
	Channels string
	// ClientID is the reader's client id; HasClientID tells an empty one
	// from none.
	ClientID    string
	HasClientID bool
	// Since is the last id the reader has seen.
	Since int64
	// Peer is who holds the read, for Config.MaxHeldPerPeer: to the Caddy
	// handler, the client's IP address. Empty: not counted.
	Peer string
	// Hold is how long the read is held when there is nothing to answer
	// with, in place of Config.HTTPTimeout: an event stream holds its reads
	// for its heartbeat interval. Negative: the read is answered at once,
	// with what its first look finds (Reason ReleasedTimeout when that is
	// nothing), as a stream's first event is. Default: 0, HTTPTimeout.
	Hold time.Duration
	// Stream is the stream the read belongs to, which counts as held in its
	// stead (see OpenStream): the read itself is neither counted nor
	// refused for the held-read limits. Default: nil, a read on its own.
	Stream *Stream
}

// Reply is the answer to a read.
type Reply struct {
	ReadResult
	// Reason says why a read without messages was answered.
	Reason ReleaseReason
	// NotifiedAt is when the hub learned of the earliest publish that woke the
	// read (or, after a store outage, that the store may have missed
	// some), for Stats.ObserveDelivery: set when a held read is released
	// by a publish (Reason ReleasedMessages after waiting), zero otherwise.
	NotifiedAt Instant
	// Memo keeps what the reads that got this same reply from one store
	// read make of it (its encodings), when other reads may have got it:
	// set on replies with messages from a shared store read (see
	// sharedReads), nil otherwise.
	Memo *ReplyMemo
}

// ReleaseReason says why a held read was answered.
type ReleaseReason uint8

const (
	// ReleasedMessages: there were messages.
	ReleasedMessages ReleaseReason = iota
	// ReleasedTimeout: HTTPTimeout passed.
	ReleasedTimeout
	// ReleasedDeleted: a channel of the read was deleted.
	ReleasedDeleted
	// ReleasedStopped: the caller's stop channel closed (server shutdown or
	// reload) or the hub closed.
	ReleasedStopped
	// ReleasedCanceled: the request's context ended (client went away).
	ReleasedCanceled
	// ReleasedUnavailable: the store failed while the read was held (Redis
	// went away). The reader gets an empty reply and comes back with its
	// since; the store reports the outage.
	ReleasedUnavailable
)

var releaseReasons = [...]string{"messages", "timeout", "deleted", "stopped", "canceled", "unavailable"}

func (r ReleaseReason) String() string {
	if int(r) < len(releaseReasons) {
		return releaseReasons[r]
	}
	return "ReleaseReason(" + strconv.Itoa(int(r)) + ")"
}

// Read answers a read: at once when any readable requested channel has
// messages newer than Since, otherwise when one gets a message, a channel of
// the read is deleted, HTTPTimeout passes, ctx ends or stop closes. The last
// four answer with no messages and a LastID to continue from.
func (h *Hub) Read(ctx context.Context, req ReadRequest, stop <-chan struct{}) (Reply, error) {
	var reply Reply
	err := h.ReadInto(ctx, &req, stop, &reply)
	return reply, err
}

// ReadInto is Read with the request and the reply passed by pointer; on
// error, *reply is zero.
//
// A held read parks its goroutine in here, under the caller's frames, and
// pays for the deepest stack it reaches for as long as it is held; so this
// path keeps to the stack budget of a held read (docs/design.md, "The stack
// budget of a held read"): the read's state lives in its waiter and in
// *reply, passed down as pointers, and waiting and looking again are
// sibling calls.
func (h *Hub) ReadInto(ctx context.Context, req *ReadRequest, stop <-chan struct{}, reply *Reply) error {
	reply.reset()
	cfg := h.config.Load()
	// snapshot leaves res as it was when it fails, so zero on the first two
	// looks and the last snapshot later on.
	res := &reply.ReadResult
	var w *waiter
	if req.Stream != nil && req.Stream.w != nil {
		// A stream reads on (see Stream), registered since its last look.
		// If that look was cut at the size limit, it looks once more from
		// its new since, in a store read begun after that look, which has
		// every message that look did not return (the streams one publish
		// released move to the same since together, and share it);
		// otherwise whatever was published since its last look has woken
		// it, and it goes straight to waiting.
		w = req.Stream.w
		h.readOn(w, req, cfg)
		if w.lookAgain {
			w.lookAgain = false
			if err := h.snapshot(ctx, w, res, w.lookedAt); err != nil {
				reply.reset()
				return w.wrapErr(err)
			}
		} else {
			// Its last look was whole: whatever came since has woken it.
			res.Since, res.LastID = w.q.Since, w.q.Since
		}
	} else {
		var err error
		if w, err = h.register(ctx, req, cfg, reply); w == nil {
			return err
		}
		if req.Stream != nil {
			req.Stream.w = w // released by Stream.Close
		} else {
			defer h.release(w)
		}
		// The snapshot comes after registering, so a publish it misses
		// notifies the waiter.
		if err := h.snapshot(ctx, w, res, h.ticks.Add(1)); err != nil {
			reply.reset()
			return w.wrapErr(err)
		}
	}
	if res.HasMessages() {
		reply.Memo = w.memo
		h.advance(w, req, res)
		return nil
	}
	// A no-op after an inline store's first look, whose since this one
	// repeats.
	h.clampSince(w, res)
	if req.Hold < 0 {
		reply.Reason = ReleasedTimeout
		return nil
	}
	// The read counts as held only from here, registered and having looked
	// after registering: Held() == n then means n reads wait for an event
	// (a publish, a deletion, a stop), which the held-reads metric and the
	// tests rely on. A stream's reads are counted by their stream, for as
	// long as it is open.
	if req.Stream == nil {
		peer, err := h.admit(cfg, req.Peer)
		if err != nil {
			reply.reset()
			return err
		}
		w.held, w.peer = true, peer
	}
	timeout := h.deadlines.after(cmp.Or(req.Hold, cfg.HTTPTimeout))
	done := req.Stream.contextDone(ctx)
	for {
		if reply.Reason = h.wait(done, w, timeout, stop); reply.Reason != lookAgain {
			return nil
		}
		// The snapshot must follow the event that woke the read, and no
		// more: reads woken by one publish then share a store read (see
		// sharedReads). On error, the reply keeps the last snapshot's
		// LastID.
		err := h.snapshot(ctx, w, res, w.eventTick.Load())
		switch {
		case err == nil && res.HasMessages():
			reply.Reason = ReleasedMessages
			reply.NotifiedAt, reply.Memo = w.notifiedAt, w.memo
			h.advance(w, req, res)
			return nil
		case err == nil:
		case ctx.Err() != nil:
			reply.Reason = ReleasedCanceled
			return nil
		case unavailable(err):
			reply.Reason = ReleasedUnavailable
			return nil
		default:
			reply.reset()
			return w.wrapErr(err)
		}
	}
}

// register makes the waiter of a read and registers it for wake-ups, or
// answers the read at once: on an inline store, which looks first, with
// what that look found, or with its error; it then returns a nil waiter,
// and the error for ReadInto to return.
func (h *Hub) register(ctx context.Context, req *ReadRequest, cfg *Config, reply *Reply) (*waiter, error) {
	w, err := newWaiter(req, cfg)
	if err != nil {
		return nil, err
	}
	res := &reply.ReadResult
	if h.inlineReads {
		// An inline store's look costs less than registering, so it looks
		// first and registers only when there is nothing to answer with.
		// A network store's look is a round trip: it looks once, after
		// registering.
		if err := h.lookInline(ctx, w, res); err != nil || res.HasMessages() {
			return nil, w.wrapErr(err)
		}
		h.clampSince(w, res)
		if req.Hold < 0 {
			reply.Reason = ReleasedTimeout
			return nil, nil
		}
		// A cheap refusal first, so that an overloaded hub does not
		// register and look again for reads it will turn away; the check
		// that counts is below.
		if req.Stream == nil && h.heldFull(cfg) {
			reply.reset()
			return nil, ErrTooManyHeld
		}
	}

	// Only a read that registers may share store reads (see sharedReads),
	// so only it needs the key that tells which.
	w.key = newQuestionKey(&w.q)
	w.q.DeferRenewal = true
	w.signal = make(chan struct{}, 1)
	h.waiters.add(w)
	h.sharedReads.join(w.key)
	return w, nil
}

// readOn moves a stream's waiter, registered since its last read, to its
// next read: from req.Since, with the hub's settings of now.
func (h *Hub) readOn(w *waiter, req *ReadRequest, cfg *Config) {
	w.exp = cfg.expiry()
	h.moveTo(w, max(req.Since, 0), messageBudget(cfg.MaxReplySize, w.q.Channels))
}

// advance moves the waiter of a stream's read that is answered with
// messages, res, to the question its next read will ask, from the reply's
// last id, at once rather than at that read: the streams one publish
// released then count in the entry of that question (see sharedReads), so
// that those that look on share a store read, however long each takes to
// write its event. Only a stream whose reply was cut at the size limit
// looks on before it waits: otherwise its look was whole, and whatever was
// published since has woken it. Reads that are not a stream's are left as
// they are.
func (h *Hub) advance(w *waiter, req *ReadRequest, res *ReadResult) {
	if req.Stream != nil && w.key.who != "" {
		w.lookAgain = res.Cut
		h.moveTo(w, res.LastID, w.q.MaxBytes)
	}
}

// moveTo moves a registered waiter to since and maxBytes, and so to the
// entry of its new question.
func (h *Hub) moveTo(w *waiter, since int64, maxBytes int) {
	if w.q.Since != since || w.q.MaxBytes != maxBytes {
		old := w.key
		w.q.Since, w.q.MaxBytes = since, maxBytes
		w.key.since, w.key.maxBytes = since, maxBytes
		h.sharedReads.join(w.key)
		h.sharedReads.leave(old)
	}
}

// snapshot takes a snapshot for w from a store read that began after tick
// after, into *res; on error it leaves *res as it was. It leads a store read
// or follows one (see sharedReads). A leader runs the store read on its own
// goroutine when the store reads inline (InlineReader), and on one of the
// hub's store readers otherwise (an offstack.Runner): a network client's
// calls are deep enough to double a held read's stack.
//
// It runs under every held read's goroutine (see Hub.ReadInto), within the
// stack budget of a held read (docs/design.md).
func (h *Hub) snapshot(ctx context.Context, w *waiter, res *ReadResult, after uint64) error {
	for {
		r, lead := h.leadOrFollow(w.key, after)
		switch {
		case lead && h.inlineReads:
			h.readStore(ctx, w, r)
			return r.result(w, res)
		case lead:
			// The readers are unbounded: Go does not wait, and cannot
			// fail.
			_ = h.storeReaders.Go(ctx, func() { h.readStore(ctx, w, r) })
		case testHookFollowed != nil:
			testHookFollowed()
		}
		// Most followers find the store read ended: the streams one publish
		// woke come to it one after another, after its leader.
		if !r.ended() {
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// The leader's request may have gone away mid-read; that is not
		// this read's failure: look again.
		if lead || !canceled(r.err) {
			return r.result(w, res)
		}
	}
}

// leadOrFollow returns the store read for key that began after tick after,
// to follow, or a new one for the caller to lead (lead true).
func (h *Hub) leadOrFollow(key questionKey, after uint64) (r *sharedRead, lead bool) {
	s := h.sharedReads.byKey.shard(key)
	s.mu.Lock()
	q := s.m[key]
	if q != nil {
		r = q.latest
	}
	if lead = r == nil || r.began <= after; lead {
		r = &sharedRead{began: h.ticks.Add(1), done: make(chan struct{})}
		// Only reads that joined take snapshots, so q is there; were it
		// not, the store read would serve its leader alone.
		if q != nil {
			q.latest = r
		}
	}
	s.mu.Unlock()
	return r, lead
}

// lookInline is the first look of a read on an inline store: a store read
// of its own, shared with no other. Sharing would cost the read more than
// the store read it might save: the store answers from memory, and reads
// of the same question rarely arrive at the same instant as new requests,
// unlike reads woken by one publish (see sharedReads). On error it leaves
// *res as it was.
func (h *Hub) lookInline(ctx context.Context, w *waiter, res *ReadResult) error {
	start := time.Now()
	r, err := h.store.Store.Read(ctx, w.q, w.exp)
	h.store.observe(start)
	if err != nil {
		return err
	}
	res.Since, res.LastID, res.Channels, res.Cut = r.Since, r.LastID, r.Channels, r.Cut
	return nil
}

// readStore runs a store read that the read w leads, timed here rather than
// through timedStore.Read, which would add a frame under held reads, and
// ends it: its followers go on, and later reads of the question take it
// while the tick rule allows, or, if it failed, lead one of their own.
func (h *Hub) readStore(ctx context.Context, w *waiter, r *sharedRead) {
	start := time.Now()
	res, err := h.store.Store.Read(ctx, w.q, w.exp)
	// Field by field: assigning the whole result through r takes a
	// temporary copy in the frame.
	r.res.Since, r.res.LastID, r.res.Channels, r.res.Cut, r.err = res.Since, res.LastID, res.Channels, res.Cut, err
	h.store.observe(start)
	if err != nil {
		h.sharedReads.forget(w.key, r)
	}
	close(r.done)
}

// clampSince takes the since of the read's first snapshot, clamped to the
// newest id, as the since the read waits with. It is done once: clamping
// again at later snapshots would move since past the very messages that
// wake the read. A read that has its question key already (a network store's,
// which registers before it looks) moves to the key of its new question.
func (h *Hub) clampSince(w *waiter, res *ReadResult) {
	if w.q.Since != res.Since {
		w.q.Since = res.Since
		if w.key.who != "" {
			old := w.key
			w.key.since = res.Since
			h.sharedReads.join(w.key)
			h.sharedReads.leave(old)
		}
	}
}

// release unregisters a read and, if it counted as held, uncounts it.
func (h *Hub) release(w *waiter) {
	h.waiters.remove(w)
	h.sharedReads.leave(w.key)
	if w.held {
		h.dismiss(w.peer)
	}
}

// admit counts a held read or a stream for the held-read limits
// (Config.MaxHeldConnections, and Config.MaxHeldPerPeer under peer), or
// refuses it with the limit's error and counts nothing. It returns the peer
// it counted the read under ("" when not counted by peer), for dismiss. It
// is the one admission of held reads and streams.
func (h *Hub) admit(cfg *Config, peer string) (countedPeer string, err error) {
	if n := h.held.Add(1); cfg.MaxHeldConnections > 0 && n > int64(cfg.MaxHeldConnections) {
		h.held.Add(-1)
		return "", ErrTooManyHeld
	}
	if cfg.MaxHeldPerPeer <= 0 || peer == "" {
		return "", nil
	}
	if !h.heldBy.acquire(peer, cfg.MaxHeldPerPeer) {
		h.held.Add(-1)
		return "", ErrTooManyHeldByPeer.With(fmt.Sprintf("at most %d", cfg.MaxHeldPerPeer))
	}
	return peer, nil
}

// dismiss uncounts what admit counted.
func (h *Hub) dismiss(countedPeer string) {
	h.held.Add(-1)
	if countedPeer != "" {
		h.heldBy.release(countedPeer)
	}
}

// heldFull reports whether the hub holds Config.MaxHeldConnections reads
// already: a cheap look before the work of a read that admit would refuse.
func (h *Hub) heldFull(cfg *Config) bool {
	return cfg.MaxHeldConnections > 0 && h.held.Load() >= int64(cfg.MaxHeldConnections)
}

// HeldBy returns how many reads peer holds, as counted for
// Config.MaxHeldPerPeer (reads are counted only while it is set).
func (h *Hub) HeldBy(peer string) int { return h.heldBy.count(peer) }

// reset zeroes r field by field, which takes no temporary on the stack as
// *r = Reply{} does.
func (r *Reply) reset() {
	r.Since, r.LastID, r.Channels, r.Cut, r.Reason, r.NotifiedAt, r.Memo = 0, 0, nil, false, 0, 0, nil
}

// unavailable reports whether err is a store failure. It is not inlined:
// its errors.As target would take stack in ReadInto's frame.
//
//go:noinline
func unavailable(err error) bool { return AsError(err) == ErrStoreUnavailable }

// lookAgain is what wait returns when a publish woke the read: not a reason
// to answer, but to take a new snapshot.
const lookAgain ReleaseReason = 255

// wait blocks until an event for the held read w and says why it should be
// answered, or lookAgain.
//
// The hub's closing is not a case of its own: every case is a channel whose
// lock the select takes twice per wait, and Close wakes the reads that are
// registered instead (wakeStopped). Those that registered after Close began
// find the hub closed here; w is registered before this look, and Close
// closes stopMaintenance before it wakes anyone.
func (h *Hub) wait(done <-chan struct{}, w *waiter, timeout, stop <-chan struct{}) ReleaseReason {
	if h.closed() {
		return ReleasedStopped
	}
	select {
	case <-w.signal:
		// Taken with the signal, so that an event arriving during the
		// snapshot counts towards the next one, should this one come
		// back empty.
		w.notifiedAt = Instant(w.pendingNotifiedAt.Swap(0))
		switch events := w.events.Swap(0); {
		case events&wakeStopped != 0:
			return ReleasedStopped
		case events&wakeDeleted != 0:
			return ReleasedDeleted
		}
		return lookAgain
	case <-timeout:
		// Close ends the deadlines too, after waking the reads.
		if h.closed() {
			return ReleasedStopped
		}
		return ReleasedTimeout
	case <-stop:
		return ReleasedStopped
	case <-done:
		return ReleasedCanceled
	}
}

// closed reports whether Close has begun.
func (h *Hub) closed() bool {
	select {
	case <-h.stopMaintenance:
		return true
	default:
		return false
	}
}

// wrapErr adds the read's channels to a store failure.
func (w *waiter) wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return wrapStore(err, "reading %q", strings.Join(w.q.Channels, "|"))
}

// newWaiter parses a read into the waiter that carries it.
func newWaiter(req *ReadRequest, cfg *Config) (*waiter, error) {
	w := &waiter{exp: cfg.expiry()}
	if err := validateRead(req, cfg.MaxChannelsPerRead, &w.q); err != nil {
		return nil, err
	}
	w.q.MaxBytes = messageBudget(cfg.MaxReplySize, w.q.Channels)
	return w, nil
}

func validateRead(req *ReadRequest, maxChannels int, q *ReadQuery) error {
	if req.HasClientID {
		if req.ClientID == "" {
			return ErrEmptyReadClientID
		}
		if err := ValidateClientID(req.ClientID); err != nil {
			return err
		}
	}
	q.ClientID, q.Since = req.ClientID, max(req.Since, 0)
	rest := req.Channels
	for rest != "" {
		var id string
		id, rest, _ = strings.Cut(rest, "|")
		if id == "" {
			continue
		}
		if err := ValidateChannelID(id); err != nil {
			return err
		}
		if slices.Contains(q.Channels, id) {
			continue
		}
		if len(q.Channels) == maxChannels {
			return tooManyChannels(maxChannels)
		}
		q.Channels = append(q.Channels, id)
	}
	if len(q.Channels) == 0 {
		return ErrNoChannels
	}
	return nil
}

func tooManyChannels(maxChannels int) error {
	return ErrTooManyChannels.With(fmt.Sprintf("at most %d", maxChannels))
}
