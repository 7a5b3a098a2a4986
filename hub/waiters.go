package hub

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// waiter is one read: its query and, once it is held, how to wake it. The
// publish path only sets a bit and does a non-blocking send on a one-slot
// channel, so waking a waiter never blocks and a wake-up that arrives before
// the reader starts waiting is kept, not lost.
//
// It is the read's only allocation of its own that lives while the read is
// held, and carries what the read needs for its snapshots (query, question key,
// expiry), so that they are passed down the read's calls as one pointer.
type waiter struct {
	signal chan struct{} // made when the read registers
	events atomic.Uint32 // bits of wakePublished, wakeDeleted, wakeStopped
	// eventTick is the tick of the latest event that woke it: its next
	// snapshot must follow it (see sharedReads).
	eventTick atomic.Uint64
	// pendingNotifiedAt is when the hub learned of the earliest event that
	// signalled the waiter since the reader last took the signal (0: none
	// since); the reader moves it to notifiedAt as it takes the signal, and
	// the reply its next snapshot makes carries it (Reply.NotifiedAt).
	pendingNotifiedAt atomic.Int64
	notifiedAt        Instant
	// q's channels and client are also what the maintenance loop keeps
	// alive.
	q    ReadQuery
	key  questionKey // its question; who is empty until it registers
	exp  Expiry
	held bool   // counted in Hub.held
	peer string // counted in Hub.heldBy under this peer
	// memo is the memo of the shared store read of the read's latest
	// snapshot (Reply.Memo), and lookedAt the tick that store read began
	// at (see Stream).
	memo     *ReplyMemo
	lookedAt uint64
	// lookAgain: a stream's next read must look before it waits, its last
	// reply having been cut at the size limit (see Hub.advance).
	lookAgain bool
}

const (
	wakePublished uint32 = 1 << iota
	wakeDeleted
	wakeStopped // the hub closed (Hub.Close)
)

// wake records an event with the given tick, of which the hub learned at
// notifiedAt, and signals the waiter. The tick and the instant are stored
// before the signal is sent, so a reader that received the signal and then
// loads eventTick sees a tick no older than the event's, and
// pendingNotifiedAt an instant no later.
func (w *waiter) wake(bits uint32, tick uint64, notifiedAt Instant) {
	for {
		old := w.eventTick.Load()
		if tick <= old || w.eventTick.CompareAndSwap(old, tick) {
			break
		}
	}
	w.events.Or(bits)
	// The earliest event counts: a reply that carries the messages of
	// several publishes was as late as its oldest.
	w.pendingNotifiedAt.CompareAndSwap(0, int64(notifiedAt))
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// waiters is the registry of held reads by channel.
type waiters struct {
	byChannel shardedMap[string, map[*waiter]struct{}]
}

func newWaiters() *waiters {
	ws := &waiters{}
	ws.byChannel.init(maphash.String)
	return ws
}

// add registers a waiter on its channels. It must happen before the read's
// snapshot: then a publish that the snapshot misses is one whose notification
// comes after this registration, and so reaches the waiter.
func (ws *waiters) add(w *waiter) {
	for _, c := range w.q.Channels {
		s := ws.byChannel.shard(c)
		s.mu.Lock()
		set := s.m[c]
		if set == nil {
			set = make(map[*waiter]struct{}, 1)
			s.m[c] = set
		}
		set[w] = struct{}{}
		s.mu.Unlock()
	}
}

func (ws *waiters) remove(w *waiter) {
	for _, c := range w.q.Channels {
		s := ws.byChannel.shard(c)
		s.mu.Lock()
		if set := s.m[c]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(s.m, c)
			}
		}
		s.mu.Unlock()
	}
}

// wakeLists are the lists wake copies a channel's waiters into, reused so
// that a publish allocates nothing in proportion to its readers.
var wakeLists = sync.Pool{New: func() any { return new([]*waiter) }}

// wake wakes every waiter on channel. It wakes them after releasing the
// shard's lock, from a copy of the channel's set: waking readies each
// reader's goroutine, which costs far more than copying a pointer, and the
// woken readers come straight back for the same lock to unregister and
// register again.
func (ws *waiters) wake(channel string, bits uint32, tick uint64) {
	s := ws.byChannel.shard(channel)
	list := wakeLists.Get().(*[]*waiter)
	s.mu.Lock()
	for w := range s.m[channel] {
		*list = append(*list, w)
	}
	s.mu.Unlock()
	// The clock is read only when there is someone to wake, so that
	// publishes nobody waits for do not pay for it.
	var notifiedAt Instant
	if len(*list) > 0 {
		notifiedAt = now()
	}
	// A waiter that unregisters meanwhile gets a wake-up it will not
	// read, which does no harm: its signal channel has a slot to spare.
	for i, w := range *list {
		w.wake(bits, tick, notifiedAt)
		(*list)[i] = nil
	}
	*list = (*list)[:0]
	wakeLists.Put(list)
}

// wakeAll wakes every waiter; used when a store may have missed
// notifications.
func (ws *waiters) wakeAll(bits uint32, tick uint64) {
	notifiedAt := now()
	ws.byChannel.each(func(m map[string]map[*waiter]struct{}) {
		for _, set := range m {
			for w := range set {
				w.wake(bits, tick, notifiedAt)
			}
		}
	})
}

// held lists the channels and clients with reads held, for keeping them alive.
func (ws *waiters) held() (channels, clients []string) {
	seenClients := make(map[string]struct{})
	ws.byChannel.each(func(m map[string]map[*waiter]struct{}) {
		for c, set := range m {
			channels = append(channels, c)
			for w := range set {
				id := w.q.ClientID
				if id == "" {
					continue
				}
				if _, ok := seenClients[id]; !ok {
					seenClients[id] = struct{}{}
					clients = append(clients, id)
				}
			}
		}
	})
	return channels, clients
}
