package hub

import "context"

// Stream is a read that goes on: an event stream, whose reads follow one
// another on one connection, each from the last id the one before returned
// (ReadRequest.Stream names the stream of a read).
//
// A stream counts as one held read, for Config.MaxHeldConnections and
// Config.MaxHeldPerPeer and in Held, from OpenStream to Close, whether it is
// waiting for a publish or writing an event: it is admitted or refused once,
// before it starts, and never turned away halfway.
//
// A stream keeps its place: once one of its reads has registered for
// wake-ups, it stays registered until Close, between reads too, and each
// later read moves it to its new since and looks once from where the last
// look left off, in a store read it shares with the streams that moved to
// the same since (docs/design.md, "Event streams keep their place"). So a
// publish while the stream writes an event is not missed, the maintenance
// loop keeps its channels and client alive throughout, and each read renews
// the client's session. Its reads must name the channels and client its
// first read named, and pass the context its first read passed.
type Stream struct {
	h      *Hub
	peer   string  // counted in Hub.heldBy under this peer
	w      *waiter // registered since the first read that registered
	closed bool
	// done is the Done channel of the context of the stream's reads,
	// taken once: a request's context is a chain of contexts, one per
	// value net/http and Caddy attach, and walking it at every event of a
	// stream parked among thousands costs a cache miss at each link.
	done <-chan struct{}
}

// contextDone returns ctx.Done(), which a stream takes once (s nil: a read
// that is no stream's).
func (s *Stream) contextDone(ctx context.Context) <-chan struct{} {
	if s == nil {
		return ctx.Done()
	}
	if s.done == nil {
		s.done = ctx.Done()
	}
	return s.done
}

// OpenStream counts a stream held by peer (see ReadRequest.Peer; empty: not
// counted by peer), or refuses it with ErrTooManyHeld or
// ErrTooManyHeldByPeer when a limit is reached. The caller must Close it.
func (h *Hub) OpenStream(peer string) (*Stream, error) {
	counted, err := h.admit(h.config.Load(), peer)
	if err != nil {
		return nil, err
	}
	return &Stream{h: h, peer: counted}, nil
}

// Close unregisters and uncounts the stream; closing it again does nothing. It is not safe
// for concurrent use: the stream's owner, which reads with it, closes it.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	if s.w != nil {
		s.h.release(s.w)
		s.w = nil
	}
	s.h.dismiss(s.peer)
}
