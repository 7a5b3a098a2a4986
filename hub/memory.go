package hub

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryStore keeps a hub in this process's memory. It is the default store:
// nothing to set up, state lost when the process exits (but not on a Caddy
// config reload, which keeps the hub).
//
// Locking: one read-mostly lock for the channel and client maps, and one lock
// per channel for its messages, so publishes to different channels do not
// contend and reads of one channel share its lock.
type MemoryStore struct {
	notify func(Event)
	ids    IDClock

	mu       sync.RWMutex
	channels map[string]*memChannel
	clients  map[string]*memClient
	// messages counts the messages the channels retain, for Counts.
	messages atomic.Int64
}

type memChannel struct {
	spec       ChannelSpec
	lastActive atomic.Int64 // Unix nanoseconds of the last read or publish

	mu       sync.RWMutex
	messages []Message // oldest first; the elements are never modified
	clients  map[string]struct{}
	keys     *publishKeys // idempotency keys of recent publishes; nil: none
	deleted  bool
}

type memClient struct {
	lastSeen atomic.Int64 // Unix nanoseconds of registration or last read
}

var (
	_ Store        = (*MemoryStore)(nil)
	_ Sweeper      = (*MemoryStore)(nil)
	_ InlineReader = (*MemoryStore)(nil)
)

// NewMemoryStore creates an empty memory store.
func NewMemoryStore(opts StoreOptions) *MemoryStore {
	notify := opts.Notify
	if notify == nil {
		notify = func(Event) {}
	}
	return &MemoryStore{
		notify:   notify,
		channels: make(map[string]*memChannel),
		clients:  make(map[string]*memClient),
	}
}

func expired(last int64, timeout time.Duration, now time.Time) bool {
	return expiredAt(last, timeout, now.UnixNano())
}

// expiredAt is expired with now in Unix nanoseconds.
func expiredAt(last int64, timeout time.Duration, now int64) bool {
	return timeout > 0 && now-last > int64(timeout)
}

// channel returns a live channel, or nil; s.mu is held.
func (s *MemoryStore) channel(id string, now time.Time, exp Expiry) *memChannel {
	c := s.channels[id]
	if c == nil || expired(c.lastActive.Load(), exp.InactiveChannelTimeout, now) {
		return nil
	}
	return c
}

// client returns a live client, or nil; s.mu is held.
func (s *MemoryStore) client(id string, now time.Time, exp Expiry) *memClient {
	cl := s.clients[id]
	if cl == nil || expired(cl.lastSeen.Load(), exp.SessionTimeout, now) {
		return nil
	}
	return cl
}

// CreateChannel implements Store.
func (s *MemoryStore) CreateChannel(_ context.Context, spec ChannelSpec, exp Expiry) error {
	// The id may be a view of the whole request body; keep only its bytes.
	spec.ID = strings.Clone(spec.ID)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channel(spec.ID, now, exp) != nil {
		return ErrChannelExists
	}
	// Channels that expired but are not swept yet still count: the hub
	// sweeps every third of inactive_channel_timeout, so a full hub takes
	// new channels again at most that much after old ones expire.
	if _, replaces := s.channels[spec.ID]; !replaces && spec.MaxChannels > 0 && len(s.channels) >= spec.MaxChannels {
		return ErrHubChannelLimit
	}
	c := &memChannel{spec: spec, clients: make(map[string]struct{})}
	c.lastActive.Store(now.UnixNano())
	s.channels[spec.ID] = c
	return nil
}

// DeleteChannel implements Store.
func (s *MemoryStore) DeleteChannel(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	c := s.channels[id]
	delete(s.channels, id)
	s.mu.Unlock()
	if c == nil {
		return false, nil
	}
	s.forget(c)
	s.notify(Event{Kind: EventDeleted, Channel: id})
	return true, nil
}

// Publish implements Store.
func (s *MemoryStore) Publish(_ context.Context, p Publication, now time.Time, exp Expiry) (Published, error) {
	s.mu.RLock()
	c := s.channel(p.Channel, now, exp)
	s.mu.RUnlock()
	if c == nil {
		return Published{}, ErrNoChannel
	}
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return Published{}, ErrNoChannel
	}
	if p.IdempotencyKey != "" {
		if id, seen := c.keys.lookup(p.IdempotencyKey, now.UnixNano(), exp.IdempotencyWindow); seen {
			c.mu.Unlock()
			return Published{Message: Message{ID: id}, Replayed: true}, nil
		}
	}
	// The id is taken under the channel's lock so that a reader who has seen
	// the id in IDClock.Last and then takes this lock sees the message.
	m := NewMessage(p.Encoded, s.ids.Next(now), now.Unix())
	drop := max(len(c.messages)+1-c.spec.MaxMessages, 0)
	c.messages = append(c.messages[drop:], m)
	s.messages.Add(int64(1 - drop))
	if p.IdempotencyKey != "" && exp.IdempotencyWindow > 0 {
		if c.keys == nil {
			c.keys = new(publishKeys)
		}
		c.keys.remember(p.IdempotencyKey, m.ID, now.UnixNano(), p.MaxIdempotencyKeys)
	}
	c.lastActive.Store(now.UnixNano())
	c.mu.Unlock()
	s.notify(Event{Kind: EventPublished, Channel: p.Channel})
	return Published{Message: m}, nil
}

// CreateClient implements Store.
func (s *MemoryStore) CreateClient(_ context.Context, spec ClientSpec, exp Expiry) error {
	spec.ID = strings.Clone(spec.ID) // as in CreateChannel
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client(spec.ID, now, exp) != nil {
		return ErrClientExists
	}
	// Expired clients not swept yet count, as channels do in CreateChannel.
	if _, replaces := s.clients[spec.ID]; !replaces && spec.MaxClients > 0 && len(s.clients) >= spec.MaxClients {
		return ErrHubClientLimit
	}
	cl := &memClient{}
	cl.lastSeen.Store(now.UnixNano())
	s.clients[spec.ID] = cl
	return nil
}

// ReadsInline implements InlineReader: Read takes no lock for long, does
// no I/O and keeps to the stack budget of a held read.
func (*MemoryStore) ReadsInline() {}

// Read implements Store.
//
// It runs under every held read's goroutine (see Hub.ReadInto), within the
// stack budget of a held read (docs/design.md): times as int64 nanoseconds,
// no closures, no defer, and one pass over the channels under the read lock
// of the channel map, with the map lookups in calls of their own.
func (s *MemoryStore) Read(_ context.Context, q ReadQuery, exp Expiry) (ReadResult, error) {
	now := time.Now().UnixNano()
	s.mu.RLock()
	if q.ClientID != "" && !s.renewClient(q.ClientID, exp.SessionTimeout, now) {
		s.mu.RUnlock()
		return ReadResult{}, ErrUnregisteredClient
	}
	// Every id up to last was given out under some channel's lock, and its
	// message was appended before that lock was released; so taking each
	// channel's lock after reading last sees all of them, and leaving out
	// newer ids keeps the snapshot consistent (see ReadResult).
	last := s.ids.Last()
	since := min(q.Since, last)
	var out []ChannelMessages
	for _, id := range q.Channels {
		c := s.readable(id, q.ClientID != "", exp.InactiveChannelTimeout, now)
		if c == nil {
			continue
		}
		if msgs, ok := c.read(q.ClientID, since, last, now); ok {
			if out == nil {
				out = make([]ChannelMessages, 0, len(q.Channels))
			}
			// Filled in place, within the capacity made above: an
			// appended literal would take a temporary in the frame.
			out = out[:len(out)+1]
			out[len(out)-1].ID, out[len(out)-1].Messages = c.spec.ID, msgs
		}
	}
	s.mu.RUnlock()
	var err error
	cut := false
	if len(out) == 0 {
		since, last, err = 0, 0, ErrNoValidChannels
	} else if q.MaxBytes > 0 {
		// The messages are views of the channels' own: cutting them
		// copies nothing.
		var l int64
		if l, cut = cutToPage(out, q.MaxBytes); cut {
			last = l
		}
	}
	return ReadResult{Since: since, LastID: last, Channels: out, Cut: cut}, err
}

// renewClient renews a live client's session and reports whether it is
// live; s.mu is held.
//
//go:noinline
func (s *MemoryStore) renewClient(id string, timeout time.Duration, now int64) bool {
	cl := s.clients[id]
	if cl == nil || expiredAt(cl.lastSeen.Load(), timeout, now) {
		return false
	}
	cl.lastSeen.Store(now)
	return true
}

// readable returns the live channel id if a reader with or without a client
// id may read it, or nil; s.mu is held. Not inlined, so that the map lookup
// takes no room in Read's frame.
//
//go:noinline
func (s *MemoryStore) readable(id string, withClient bool, timeout time.Duration, now int64) *memChannel {
	c := s.channels[id]
	if c == nil || expiredAt(c.lastActive.Load(), timeout, now) || (!withClient && c.spec.UseSessions) {
		return nil
	}
	return c
}

// read returns the channel's messages with ids in (since, last], records
// clientID (if any) as a reader of the channel, and renews its activity. ok
// is false when the channel was deleted.
func (c *memChannel) read(clientID string, since, last, now int64) (msgs []Message, ok bool) {
	c.lastActive.Store(now)
	c.mu.RLock()
	if c.deleted {
		c.mu.RUnlock()
		return nil, false
	}
	msgs = c.messages
	from, to := firstAfter(msgs, since), firstAfter(msgs, last)
	_, known := c.clients[clientID]
	c.mu.RUnlock()
	if clientID != "" && !known {
		c.addReader(clientID)
	}
	return msgs[from:to:to], true
}

// addReader records a client as a reader of the channel. The id may be a
// view of the whole request line: the channel keeps a copy of its bytes.
func (c *memChannel) addReader(clientID string) {
	c.mu.Lock()
	c.clients[strings.Clone(clientID)] = struct{}{}
	c.mu.Unlock()
}

// firstAfter returns the index of the first of msgs (oldest first) with an id
// above id, or len(msgs).
func firstAfter(msgs []Message, id int64) int {
	lo, hi := 0, len(msgs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if msgs[m].ID > id {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// Touch implements Store.
func (s *MemoryStore) Touch(_ context.Context, channels, clients []string, _ Expiry) error {
	now := time.Now().UnixNano()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range channels {
		if c := s.channels[id]; c != nil {
			c.lastActive.Store(now)
		}
	}
	for _, id := range clients {
		if cl := s.clients[id]; cl != nil {
			cl.lastSeen.Store(now)
		}
	}
	return nil
}

// Sweep implements Sweeper: it removes expired channels, with their messages,
// and expired clients.
func (s *MemoryStore) Sweep(now time.Time, exp Expiry) {
	var gone []*memChannel
	var goneClients []string
	s.mu.Lock()
	for id, c := range s.channels {
		if expired(c.lastActive.Load(), exp.InactiveChannelTimeout, now) {
			delete(s.channels, id)
			gone = append(gone, c)
		}
	}
	for id, cl := range s.clients {
		if expired(cl.lastSeen.Load(), exp.SessionTimeout, now) {
			delete(s.clients, id)
			goneClients = append(goneClients, id)
		}
	}
	live := make([]*memChannel, 0, len(s.channels))
	if len(goneClients) > 0 {
		for _, c := range s.channels {
			live = append(live, c)
		}
	}
	s.mu.Unlock()

	for _, c := range gone {
		s.forget(c)
		s.notify(Event{Kind: EventDeleted, Channel: c.spec.ID})
	}
	for _, c := range live {
		c.mu.Lock()
		for _, id := range goneClients {
			delete(c.clients, id)
		}
		c.mu.Unlock()
	}
}

// forget marks c, taken out of the channel map, deleted, and uncounts its
// messages.
func (s *MemoryStore) forget(c *memChannel) {
	c.mu.Lock()
	c.deleted = true
	s.messages.Add(-int64(len(c.messages)))
	c.mu.Unlock()
}

// Counts implements Store.
func (s *MemoryStore) Counts(context.Context) (Counts, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.counts(), nil
}

// counts returns the store's Counts; s.mu is held. Expired channels and
// clients count until they are swept.
func (s *MemoryStore) counts() Counts {
	return Counts{Channels: len(s.channels), Clients: len(s.clients), Messages: int(s.messages.Load())}
}

// Status implements Store: the StatusListLimit channels and clients first
// by id, and each channel's readers first by id.
func (s *MemoryStore) Status(_ context.Context) (Status, error) {
	s.mu.RLock()
	st := Status{Counts: s.counts()}
	ids := make([]string, 0, len(s.channels))
	for id := range s.channels {
		ids = append(ids, id)
	}
	ids = firstIDs(ids, StatusListLimit)
	chans := make([]*memChannel, len(ids))
	for i, id := range ids {
		chans[i] = s.channels[id]
	}
	st.Clients = make([]string, 0, len(s.clients))
	for id := range s.clients {
		st.Clients = append(st.Clients, id)
	}
	s.mu.RUnlock()
	st.Clients = firstIDs(st.Clients, StatusListLimit)

	st.Channels = make([]ChannelStatus, 0, len(chans))
	readers := StatusReadersLimit
	for _, c := range chans {
		c.mu.RLock()
		cs := ChannelStatus{
			ID:            c.spec.ID,
			UseSessions:   c.spec.UseSessions,
			MaxMessages:   c.spec.MaxMessages,
			MessagesCount: len(c.messages),
			ClientsCount:  len(c.clients),
			Clients:       make([]string, 0, len(c.clients)),
		}
		for id := range c.clients {
			cs.Clients = append(cs.Clients, id)
		}
		c.mu.RUnlock()
		cs.Clients = firstIDs(cs.Clients, min(StatusReadersPerChannel, readers))
		readers -= len(cs.Clients)
		st.Channels = append(st.Channels, cs)
	}
	return st, nil
}

// firstIDs sorts ids and cuts them at limit, letting go of the rest.
func firstIDs(ids []string, limit int) []string {
	slices.Sort(ids)
	if len(ids) > limit {
		return slices.Clone(ids[:limit])
	}
	return ids
}

// Close implements Store; a memory store holds nothing to release.
func (s *MemoryStore) Close() error { return nil }

// Ping implements Store: memory is always there.
func (s *MemoryStore) Ping(context.Context) error { return nil }
