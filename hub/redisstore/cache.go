package redisstore

import (
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// The node cache: each node keeps the newest messages of the channels its
// readers read, from the events Redis sends it (each carries its message),
// and answers the reads that registered for wake-ups from them, so that a
// publish costs Redis no read per reader (docs/design.md, "Node caches").
// Its rules:
//
//   - The event stream is Redis's order: a node that has handled an event
//     has handled every event published before it. last is the newest id
//     the stream has shown since the subscription was confirmed; a read
//     answered here is the snapshot Redis would have given at that point of
//     the stream, so its LastID is last and it holds no message above it.
//   - A channel's entry holds every message of the channel with an id in
//     (floor, head]: an event's message joins it only when the event's prev
//     is head, and any other event of the channel drops it.
//   - An entry is made from a Redis read (a seed) only when no event of its
//     channel was handled while the read ran: an event handled then may or
//     may not be in the read's snapshot.
//   - Losing the subscription empties the cache; reads go to Redis until a
//     read after the next confirmation seeds it again and an event sets last.
//   - A channel is answered here only while the node knows it alive for half
//     its inactive_channel_timeout more (renewed by a read, a publish or a
//     touch that this node saw), a session client likewise for half its
//     session_timeout; both timeouts must be at least minCachedTimeout.
//     The reads answered here are renewed at the hub's next Touch
//     (hub.ReadQuery.DeferRenewal), at most a third of the timeout later.

// cacheDepth is the most messages a node keeps of one channel: a reader
// further behind reads Redis.
const cacheDepth = 64

// cacheBytes bounds the JSON of the messages a node keeps, over all
// channels: an entry that would take more is dropped.
const cacheBytes = 64 << 20

// minCachedTimeout is the shortest session_timeout or
// inactive_channel_timeout under which the cache answers reads: the hub
// touches every third of the shorter timeout, but not more often than every
// 50 ms.
const minCachedTimeout = time.Second

// stampBuckets is how many buckets the channels' event stamps are hashed
// into: two channels in one bucket only make a seed of one wait for the
// next read.
const stampBuckets = 1024

type cache struct {
	mu sync.Mutex
	// live: the subscription is confirmed and no event was lost since.
	live bool
	// epoch counts confirmations and losses of the subscription; a seed
	// from a read that began in another epoch is dropped.
	epoch uint64
	// seq counts the events handled; stamps holds, per bucket of channels,
	// the seq of the last event of one of them.
	seq      uint64
	stamps   [stampBuckets]uint64
	hashSeed maphash.Seed
	// last is the newest message id the event stream has shown readers
	// (0: none since the subscription was confirmed).
	last int64
	// own is the newest id this node published (and, durable, made
	// visible): until the event stream has shown it (last), the cache
	// answers nothing, so that a read after a publish on the node that
	// made it sees it, as it would in Redis; the events come a moment
	// after the publish's reply.
	own      int64
	bytes    int
	channels map[string]*cachedChannel
	// clients are the session clients known alive: renewed (by a read or a
	// touch of this node's) no earlier than the time kept.
	clients map[string]time.Time
	// pending are the renewals deferred to the next Touch: channel ids to
	// the clients to record as their readers, and session clients.
	pending        map[string]map[string]struct{}
	pendingClients map[string]struct{}
}

// cachedChannel is a channel's entry.
type cachedChannel struct {
	useSessions bool
	maxMessages int
	// msgs are every message of the channel with an id in (floor, head],
	// oldest first.
	floor, head int64
	msgs        []hub.Message
	bytes       int
	// renewed: the channel was renewed no earlier than this.
	renewed time.Time
	// used: a read was answered from it since the last Touch.
	used bool
}

func newCache() *cache {
	return &cache{
		hashSeed:       maphash.MakeSeed(),
		channels:       map[string]*cachedChannel{},
		clients:        map[string]time.Time{},
		pending:        map[string]map[string]struct{}{},
		pendingClients: map[string]struct{}{},
	}
}

func (c *cache) bucket(channel string) int {
	return int(maphash.String(c.hashSeed, channel) % stampBuckets)
}

// resume is called when the subscription is confirmed, suspend when it is
// lost: either way what the cache holds may miss events.
func (c *cache) resume()  { c.reset(true) }
func (c *cache) suspend() { c.reset(false) }

func (c *cache) reset(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.epoch++
	c.last = 0
	c.bytes = 0
	clear(c.channels)
	clear(c.clients)
}

// readStart marks where a Redis read began, for seed.
type readStart struct {
	epoch, seq uint64
	at         time.Time
}

func (c *cache) begin() readStart {
	c.mu.Lock()
	defer c.mu.Unlock()
	return readStart{epoch: c.epoch, seq: c.seq, at: time.Now()}
}

// fresh reports whether something renewed at renewed, with a timeout of
// ttl (0: none), may be taken as alive now.
func fresh(renewed, now time.Time, ttl time.Duration) bool {
	return ttl == 0 || now.Sub(renewed) < ttl/2
}

// cacheable reports whether reads under exp may be answered from a cache.
func cacheable(exp hub.Expiry) bool {
	ok := func(d time.Duration) bool { return d == 0 || d >= minCachedTimeout }
	return ok(exp.SessionTimeout) && ok(exp.InactiveChannelTimeout)
}

// read answers q from the cache when it can, and defers its renewals to the
// next Touch.
func (c *cache) read(q *hub.ReadQuery, exp hub.Expiry) (hub.ReadResult, bool) {
	if !q.DeferRenewal || !cacheable(exp) {
		return hub.ReadResult{}, false
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.last == 0 || q.Since > c.last || c.last < c.own {
		return hub.ReadResult{}, false
	}
	if q.ClientID != "" {
		if at, ok := c.clients[q.ClientID]; !ok || !fresh(at, now, exp.SessionTimeout) {
			return hub.ReadResult{}, false
		}
	}
	entries := make([]*cachedChannel, len(q.Channels))
	readable := 0
	for i, id := range q.Channels {
		e := c.channels[id]
		if e == nil || !fresh(e.renewed, now, exp.InactiveChannelTimeout) || q.Since < e.floor {
			return hub.ReadResult{}, false
		}
		if !e.useSessions || q.ClientID != "" {
			entries[i] = e
			readable++
		}
	}
	if readable == 0 {
		return hub.ReadResult{}, false
	}
	res := hub.ReadResult{Since: q.Since, LastID: c.last, Channels: make([]hub.ChannelMessages, 0, readable)}
	for i, e := range entries {
		if e == nil {
			continue
		}
		from, _ := slices.BinarySearchFunc(e.msgs, q.Since+1, byID)
		to, _ := slices.BinarySearchFunc(e.msgs, c.last+1, byID)
		res.Channels = append(res.Channels, hub.ChannelMessages{ID: q.Channels[i], Messages: e.msgs[from:to:to]})
		e.used = true
		c.defer1(q.Channels[i], q.ClientID)
	}
	if q.ClientID != "" {
		c.pendingClients[q.ClientID] = struct{}{}
	}
	if q.MaxBytes > 0 {
		cutToPage(&res, q.MaxBytes)
	}
	return res, true
}

func byID(m hub.Message, id int64) int {
	switch {
	case m.ID < id:
		return -1
	case m.ID > id:
		return 1
	}
	return 0
}

// defer1 records the renewal of channel, and of client as its reader,
// for the next Touch.
func (c *cache) defer1(channel, client string) {
	readers := c.pending[channel]
	if readers == nil {
		readers = map[string]struct{}{}
		c.pending[channel] = readers
	}
	if client != "" {
		readers[client] = struct{}{}
	}
}

// cutToPage keeps the oldest messages across the result's channels whose
// JSON, plus a byte each, fits maxBytes (at least one), as the read script
// does, and makes the last one's id the result's LastID when it left any
// out.
func cutToPage(res *hub.ReadResult, maxBytes int) {
	pos := make([]int, len(res.Channels))
	size, count, lastTaken := 0, 0, int64(0)
	for {
		next := -1
		for i, ch := range res.Channels {
			if pos[i] < len(ch.Messages) && (next < 0 || ch.Messages[pos[i]].ID < res.Channels[next].Messages[pos[next]].ID) {
				next = i
			}
		}
		if next < 0 {
			return // everything fits
		}
		m := res.Channels[next].Messages[pos[next]]
		if count > 0 && size+len(m.JSON)+1 > maxBytes {
			break
		}
		size, count, lastTaken = size+len(m.JSON)+1, count+1, m.ID
		pos[next]++
	}
	res.LastID, res.Cut = lastTaken, true
	for i := range res.Channels {
		res.Channels[i].Messages = res.Channels[i].Messages[:pos[i]:pos[i]]
	}
}

// seedChannel is what a Redis read tells of one readable channel.
type seedChannel struct {
	id          string
	msgs        []hub.Message
	head        int64 // newest message readers may see
	newest      int64 // newest message, durable ones not yet visible included
	useSessions bool
	maxMessages int
}

// seed makes entries of the channels a Redis read of q, begun at start,
// returned in full (not cut to a page), and notes its client alive.
func (c *cache) seed(start readStart, q *hub.ReadQuery, since int64, chans []seedChannel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != start.epoch {
		return
	}
	if q.ClientID != "" {
		if at, ok := c.clients[q.ClientID]; !ok || at.Before(start.at) {
			c.clients[q.ClientID] = start.at
		}
	}
	for _, sc := range chans {
		e := c.channels[sc.id]
		if e != nil && e.renewed.Before(start.at) {
			e.renewed = start.at
		}
		// A durable message not yet visible is in no read: its event
		// may have been handled before the read began, so the entry
		// could never get it.
		if c.stamps[c.bucket(sc.id)] > start.seq || sc.newest != sc.head {
			continue
		}
		// An entry is replaced only by a read that reaches further back
		// to the same newest message: a reader behind it made it.
		if e != nil {
			if since >= e.floor || sc.head != e.head {
				continue
			}
			c.drop(sc.id, e)
		}
		// head is the channel's newest message, which the next event's
		// prev names, even when it is older than since.
		e = &cachedChannel{useSessions: sc.useSessions, maxMessages: sc.maxMessages, floor: since,
			head: sc.head, renewed: start.at, used: true}
		keep := min(len(sc.msgs), e.limit())
		if keep < len(sc.msgs) {
			e.floor = sc.msgs[len(sc.msgs)-keep-1].ID
		}
		e.msgs = slices.Clip(slices.Clone(sc.msgs[len(sc.msgs)-keep:]))
		for _, m := range e.msgs {
			e.bytes += len(m.JSON)
		}
		if c.bytes+e.bytes > cacheBytes {
			continue
		}
		c.bytes += e.bytes
		c.channels[sc.id] = e
	}
}

// limit is how many messages the entry keeps.
func (e *cachedChannel) limit() int { return min(e.maxMessages, cacheDepth) }

// published handles a message's event: "m" (visible: it sets last), or
// "s" (a durable message stored, not yet visible).
func (c *cache) published(channel string, id, prev int64, json []byte, visible bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.stamps[c.bucket(channel)] = c.seq
	if visible && c.live {
		c.last = max(c.last, id)
	}
	e := c.channels[channel]
	if e == nil {
		return
	}
	// The publish renewed the channel.
	e.renewed = now
	switch {
	case id <= e.head:
		return // in the read that made the entry
	case prev != e.head:
		c.drop(channel, e)
		return
	}
	if c.bytes+len(json) > cacheBytes {
		c.drop(channel, e)
		return
	}
	e.msgs = append(e.msgs, hub.Message{ID: id, JSON: json})
	e.head = id
	e.bytes += len(json)
	c.bytes += len(json)
	if over := len(e.msgs) - e.limit(); over > 0 {
		for _, m := range e.msgs[:over] {
			e.bytes -= len(m.JSON)
			c.bytes -= len(m.JSON)
		}
		e.floor = e.msgs[over-1].ID
		e.msgs = e.msgs[over:]
	}
}

// wrote records the id of a publish this node made, acknowledged to its
// caller (see own).
func (c *cache) wrote(id int64) {
	c.mu.Lock()
	c.own = max(c.own, id)
	c.mu.Unlock()
}

// committed handles a durable message's commit: what is visible goes up to
// its id.
func (c *cache) committed(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if c.live {
		c.last = max(c.last, id)
	}
}

// forget handles any other event of a channel (its deletion, or a publish
// by a node that sends no message with its events): its entry goes.
func (c *cache) forget(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.stamps[c.bucket(channel)] = c.seq
	if e := c.channels[channel]; e != nil {
		c.drop(channel, e)
	}
}

func (c *cache) drop(channel string, e *cachedChannel) {
	c.bytes -= e.bytes
	delete(c.channels, channel)
}

// takePending hands over the renewals deferred so far, and drops the
// entries of channels that no read used since the last call and that have
// no read held (held), and the clients too long unconfirmed to be answered
// for (sessionTimeout).
func (c *cache) takePending(held []string, sessionTimeout time.Duration) (channels map[string]map[string]struct{}, clients map[string]struct{}) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, at := range c.clients {
		if !fresh(at, now, sessionTimeout) {
			delete(c.clients, id)
		}
	}
	for _, id := range held {
		if e := c.channels[id]; e != nil {
			e.used = true
		}
	}
	for id, e := range c.channels {
		if !e.used {
			c.drop(id, e)
		}
		e.used = false
	}
	channels, clients = c.pending, c.pendingClients
	c.pending, c.pendingClients = map[string]map[string]struct{}{}, map[string]struct{}{}
	return channels, clients
}

// putBack returns renewals that a failed Touch did not make, for the next.
func (c *cache) putBack(channels map[string]map[string]struct{}, clients map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch, readers := range channels {
		for r := range readers {
			c.defer1(ch, r)
		}
		c.defer1(ch, "")
	}
	for cl := range clients {
		c.pendingClients[cl] = struct{}{}
	}
}

// touched records a Touch begun at start: the channels and clients it
// renewed are alive, those it found gone are forgotten.
func (c *cache) touched(start time.Time, channels, clients, goneChannels, goneClients []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range goneChannels {
		if e := c.channels[id]; e != nil {
			c.drop(id, e)
		}
	}
	for _, id := range goneClients {
		delete(c.clients, id)
	}
	for _, id := range channels {
		if e := c.channels[id]; e != nil && e.renewed.Before(start) {
			e.renewed = start
		}
	}
	for _, id := range clients {
		if at, ok := c.clients[id]; ok && at.Before(start) {
			c.clients[id] = start
		}
	}
}

// parseEvent splits an "m" or "s" event's body, "<id> <prev>\n<channel>\n<json>".
func parseEvent(body string) (id, prev int64, channel, json string, ok bool) {
	head, rest, ok1 := strings.Cut(body, "\n")
	channel, json, ok2 := strings.Cut(rest, "\n")
	ids, prevs, ok3 := strings.Cut(head, " ")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, "", "", false
	}
	id, err1 := strconv.ParseInt(ids, 10, 64)
	prev, err2 := strconv.ParseInt(prevs, 10, 64)
	return id, prev, channel, json, err1 == nil && err2 == nil
}
