package hub

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
	counted, err := h.admit(h.config.Load(), peer)
	if err != nil {
		return nil, err
	}
	return &Stream{h: h, peer: counted}, nil
}

// Close uncounts the stream; closing it again does nothing. It is not safe
// for concurrent use: the stream's owner, which reads with it, closes it.
func (s *Stream) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.h.dismiss(s.peer)
}
