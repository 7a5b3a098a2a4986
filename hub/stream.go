package hub

import "fmt"

// Stream is a read that goes on: an event stream, whose reads follow one
// another on one connection, each from the last id the one before returned
// (ReadRequest.Stream names the stream of a read).
//
// A stream counts as one held read, for Config.MaxHeldConnections and
// Config.MaxHeldPerPeer and in Held, from OpenStream to Close, whether it is
// waiting for a publish or writing an event: it is admitted or refused once,
// before it starts, and never turned away halfway. Its reads register for
// wake-ups as any read does, so the maintenance loop keeps their channels
// and client alive, and each renews the client's session.
type Stream struct {
	h      *Hub
	peer   string // counted in Hub.heldBy under this peer
	closed bool
}

// OpenStream counts a stream held by peer (see ReadRequest.Peer; empty: not
// counted by peer), or refuses it with ErrTooManyHeld or
// ErrTooManyHeldByPeer when a limit is reached. The caller must Close it.
func (h *Hub) OpenStream(peer string) (*Stream, error) {
	cfg := h.config.Load()
	if n := h.held.Add(1); cfg.MaxHeldConnections > 0 && n > int64(cfg.MaxHeldConnections) {
		h.held.Add(-1)
		return nil, ErrTooManyHeld
	}
	s := &Stream{h: h}
	if cfg.MaxHeldPerPeer > 0 && peer != "" {
		if !h.heldBy.acquire(peer, cfg.MaxHeldPerPeer) {
			h.held.Add(-1)
			return nil, ErrTooManyHeldByPeer.With(fmt.Sprintf("at most %d", cfg.MaxHeldPerPeer))
		}
		s.peer = peer
	}
	return s, nil
}

// Close uncounts the stream; closing it again does nothing. It is not safe
// for concurrent use: the stream's owner, which reads with it, closes it.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.h.held.Add(-1)
	if s.peer != "" {
		s.h.heldBy.release(s.peer)
	}
}
