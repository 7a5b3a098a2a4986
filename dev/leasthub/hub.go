package leasthub

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hub is the least hub's state: per channel, the held reads waiting for its
// next publish and the open streams. Nothing is retained: a publish goes to
// whoever waits on its channel at that moment, and is then forgotten.
type hub struct {
	mu       sync.Mutex
	channels map[string]*channel
	// lastID is the last message id given out; ids grow across the hub,
	// as comet's do, and start from the clock so that they look like
	// comet's (10 us ticks).
	lastID int64
	// held counts held reads and open streams, for /status.json.
	held atomic.Int64
}

func newHub() *hub {
	return &hub{channels: map[string]*channel{}, lastID: time.Now().UnixMicro() / 10}
}

// channel is who waits for a channel's next publish.
type channel struct {
	// waiters are the held reads registered since the last publish; a
	// read of several channels is in each of their lists, and answered by
	// the first publish on any of them.
	waiters []*waiter
	// streams are the open streams that read the channel.
	streams map[*stream]struct{}
}

func (h *hub) channel(name string) *channel {
	c := h.channels[name]
	if c == nil {
		c = &channel{streams: map[*stream]struct{}{}}
		h.channels[name] = c
	}
	return c
}

// waiter is one held read: it gets the encoded reply of the first publish
// on any of its channels.
type waiter struct {
	// taken is set by whoever answers or gives up the read first: a
	// publish, the timeout or the client going away. A waiter that was
	// taken stays in the lists of its other channels until their next
	// publish drops it.
	taken atomic.Bool
	reply chan []byte
}

// wait registers a held read of names.
func (h *hub) wait(names []string) *waiter {
	w := &waiter{reply: make(chan []byte, 1)}
	h.mu.Lock()
	for _, n := range names {
		c := h.channel(n)
		c.waiters = append(c.waiters, w)
	}
	h.mu.Unlock()
	h.held.Add(1)
	return w
}

// giveUp takes the read for its timeout or its client's departure; false
// means a publish took it first and its reply is in w.reply.
func (h *hub) giveUp(w *waiter) bool {
	if w.taken.CompareAndSwap(false, true) {
		h.held.Add(-1)
		return true
	}
	return false
}

// stream is one open event stream: the events published on its channels,
// queued for its own goroutine to write.
type stream struct {
	mu      sync.Mutex
	pending [][]byte
	// wake has a value when pending has events.
	wake chan struct{}
}

// open registers a stream of names; close unregisters it.
func (h *hub) open(names []string) *stream {
	s := &stream{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	for _, n := range names {
		h.channel(n).streams[s] = struct{}{}
	}
	h.mu.Unlock()
	h.held.Add(1)
	return s
}

func (h *hub) close(s *stream, names []string) {
	h.mu.Lock()
	for _, n := range names {
		delete(h.channel(n).streams, s)
	}
	h.mu.Unlock()
	h.held.Add(-1)
}

// take returns the queued events and empties the queue.
func (s *stream) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.pending
	s.pending = nil
	return evs
}

// publish gives content a message id and hands the one encoding of it to
// every read held on the channel and every stream open on it: the read
// reply for held reads, that reply as an event for streams.
func (h *hub) publish(name, content string) int64 {
	h.mu.Lock()
	since := h.lastID
	h.lastID++
	id := h.lastID
	c := h.channel(name)
	waiters := c.waiters
	c.waiters = nil
	streams := make([]*stream, 0, len(c.streams))
	for s := range c.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()

	reply := encodeReply(name, content, since, id)
	for _, w := range waiters {
		if w.taken.CompareAndSwap(false, true) {
			h.held.Add(-1)
			w.reply <- reply
		}
	}
	if len(streams) > 0 {
		ev := encodeEvent(reply, id)
		for _, s := range streams {
			s.mu.Lock()
			s.pending = append(s.pending, ev)
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	return id
}

// encodeReply is the read reply of one message, in comet's shape
// (docs/api.md, "Calls"): since is the id before it, so the reply is what
// a comet read with that since would answer.
func encodeReply(name, content string, since, id int64) []byte {
	b := make([]byte, 0, len(content)+len(name)+128)
	b = append(b, `{"since":`...)
	b = strconv.AppendInt(b, since, 10)
	b = append(b, `,"messages":{`...)
	b = appendJSONString(b, name)
	b = append(b, `:[{"content":`...)
	b = appendJSONString(b, content)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `}]},"last_id":`...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, `,"return_code":1,"error_message":""}`...)
}

// encodeEvent is reply as a Server-Sent Event, as comet's streams write it
// (docs/api.md, "Server-Sent Events"): its id the message id.
func encodeEvent(reply []byte, id int64) []byte {
	b := make([]byte, 0, len(reply)+40)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, "\ndata: "...)
	b = append(b, reply...)
	return append(b, "\n\n"...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}
