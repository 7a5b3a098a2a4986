package hub

import (
	"context"
	"time"
)

// Store keeps a hub's channels, messages, clients and message ids. The hub
// validates input, holds reads and wakes them; the store owns everything that
// must be shared when several processes serve one hub.
//
// A store must be safe for concurrent use. It never blocks waiting for
// messages: the hub does the waiting, and the store tells it through
// StoreOptions.Notify when something it may be waiting for happened.
//
// Errors the API defines (ErrChannelExists, ErrNoChannel, ...) are returned as
// the *Error values of this package; anything else counts as the store being
// unavailable (-4) and is logged by the caller.
type Store interface {
	// CreateChannel registers a channel. It returns ErrChannelExists when a
	// live channel with that id exists, and ErrHubChannelLimit when the hub
	// holds spec.MaxChannels live channels already; the check and the
	// creation are one step, on every node.
	CreateChannel(ctx context.Context, spec ChannelSpec, exp Expiry) error

	// DeleteChannel removes a channel and its messages and notifies
	// EventDeleted. removed is false when there was no such channel.
	DeleteChannel(ctx context.Context, id string) (removed bool, err error)

	// Publish gives the content the next message id, appends it to the
	// channel, drops the channel's oldest messages beyond its max_messages,
	// renews the channel's activity and notifies EventPublished, all as one
	// step. It returns ErrNoChannel for an unknown channel.
	//
	// A publication with an IdempotencyKey that the channel has seen within
	// exp.IdempotencyWindow publishes nothing and returns the id of the
	// message published with it, Replayed set; otherwise the channel
	// remembers the key, with the new id, as part of the same step. A
	// channel remembers at most p.MaxIdempotencyKeys keys, forgetting the
	// oldest first, and forgets them with its messages.
	Publish(ctx context.Context, p Publication, now time.Time, exp Expiry) (Published, error)

	// CreateClient registers a session client. It returns ErrClientExists
	// when a live client with that id exists, and ErrHubClientLimit when the
	// hub holds spec.MaxClients live clients already; the check and the
	// creation are one step, on every node.
	CreateClient(ctx context.Context, spec ClientSpec, exp Expiry) error

	// Read returns, as one consistent snapshot, the messages newer than
	// q.Since on every readable requested channel and the newest id of the
	// hub; see ReadQuery and ReadResult for the rules.
	Read(ctx context.Context, q ReadQuery, exp Expiry) (ReadResult, error)

	// Touch renews the activity of channels and the sessions of clients that
	// have reads held on this node, so that a read held longer than a timeout
	// does not let them expire. Unknown ids are ignored. The hub calls it at
	// every maintenance tick, at least every third of the shorter of
	// exp's timeouts when that is a second or more, with empty lists when
	// it holds no read: a store renews there what it deferred
	// (ReadQuery.DeferRenewal).
	Touch(ctx context.Context, channels, clients []string, exp Expiry) error

	// Counts returns the hub's sizes at a cost that does not grow with
	// them: metrics take them at every scrape.
	Counts(ctx context.Context) (Counts, error)

	// Status lists the hub's channels and clients, at most
	// StatusListLimit of each (those first by id on the memory store, any
	// of them on Redis), sorted by id, each channel with its readers as
	// StatusReadersPerChannel and StatusReadersLimit bound them, and the
	// hub's Counts.
	Status(ctx context.Context) (Status, error)

	// Ping reports whether the store can serve calls now: nil when its
	// backend answered a request that changes nothing, an error (a store
	// failure: -4) when it did not, or not before ctx's deadline. The
	// health endpoint asks it, so it must be cheap, and an outage it meets
	// is reported like any other (once).
	Ping(ctx context.Context) error

	// Close releases the store's connections and goroutines.
	Close() error
}

// Sweeper is implemented by stores that must remove expired channels and
// clients themselves (the memory store). Stores whose backend expires keys on
// its own (Redis TTLs) need not implement it. The hub calls Sweep from its
// maintenance loop.
type Sweeper interface {
	Sweep(now time.Time, exp Expiry)
}

// InlineReader is implemented by stores whose reads may run on a held read's
// own goroutine (the memory store). By implementing it a store promises that
// Read returns in microseconds, without I/O or waiting on anything but short
// locks, and keeps to the stack budget of a held read (docs/design.md, "The
// stack budget of a held read"): a few hundred bytes of frames, no closures
// or defers, nothing that grows the stack of the goroutine it runs on. The
// hub then looks before registering a read, and a read that leads a shared
// store read runs it itself. Other stores' reads run on a goroutine of their
// own.
type InlineReader interface {
	ReadsInline()
}

// StoreOptions is what a hub hands a store when it opens it.
type StoreOptions struct {
	// Notify is called when a channel gets a message or is deleted, on this
	// node or, for shared stores, on any node. It must not block for long:
	// it only wakes held reads.
	Notify func(Event)

	// Hub is the hub's name. A store that several hubs can share (Redis)
	// keeps hubs with different names apart by it.
	Hub string
}

// Expiry carries the hub's current timeouts into store calls, so that a
// configuration reload can change them without reopening the store.
type Expiry struct {
	// SessionTimeout is how long a registered client lives after its last
	// read. Zero means sessions never expire.
	SessionTimeout time.Duration

	// InactiveChannelTimeout is how long a channel lives without reads or
	// publishes. Zero means channels never expire.
	InactiveChannelTimeout time.Duration

	// IdempotencyWindow is how long a channel remembers a publication's
	// idempotency key (see Store.Publish): at least this long, and no
	// longer than its channel. Zero: keys are not remembered.
	IdempotencyWindow time.Duration
}

// Publication is a message to publish, already validated.
type Publication struct {
	// Channel is the channel id.
	Channel string
	// Encoded is the content encoded as a JSON string (EncodeContent), so
	// that a store builds the message's JSON without encoding again.
	Encoded []byte
	// IdempotencyKey, when not empty, makes a retry of this publication
	// publish nothing (see Store.Publish). Validated by
	// ValidateIdempotencyKey.
	IdempotencyKey string
	// MaxIdempotencyKeys is the most keys the channel remembers (>= 1 when
	// IdempotencyKey is set).
	MaxIdempotencyKeys int
}

// Published is what a publish did.
type Published struct {
	// Message is the message published. For a replay it carries only the
	// ID of the message first published with the key (JSON is nil): the
	// message itself may have left the channel since.
	Message
	// Replayed reports that the key had been used within the window, so
	// that nothing was published.
	Replayed bool
}

// ChannelSpec describes a channel to create.
type ChannelSpec struct {
	// ID is the channel id, already validated.
	ID string
	// UseSessions restricts reads to registered clients.
	UseSessions bool
	// MaxMessages is how many messages the channel retains (>= 1).
	MaxMessages int
	// MaxChannels is the most live channels the hub may hold, this one
	// included. 0: no limit.
	MaxChannels int
}

// ClientSpec describes a session client to create.
type ClientSpec struct {
	// ID is the client id, already validated.
	ID string
	// MaxClients is the most live clients the hub may hold, this one
	// included. 0: no limit.
	MaxClients int
}

// ReadQuery is one read, already validated by the hub.
type ReadQuery struct {
	// Channels are the requested channel ids, without duplicates.
	Channels []string
	// ClientID is the reader's client id; empty for anonymous reads.
	ClientID string
	// Since is the last id the reader has seen.
	Since int64
	// MaxBytes bounds the messages of the result: their JSON, plus one
	// byte each, fits it, unless that leaves none, and then the result
	// holds the oldest one. A result that leaves messages out holds the
	// oldest ones newer than Since in id order across the channels, and its
	// LastID is the id of its last message (see ReadResult). A store must
	// not fetch much more than that from its backend. 0: no limit.
	MaxBytes int
	// DeferRenewal says that the read is registered for wake-ups: the hub
	// calls Touch at its next maintenance tick, while the read's client and
	// channels are still alive, so the store may renew them, and record the
	// client as a reader of the channels, there instead of as it reads
	// (docs/design.md, "Node caches"). The client must still be live when
	// the read is answered, as it must for any read. Default: false, the
	// read renews them itself.
	DeferRenewal bool
}

// ReadResult is a consistent snapshot for one read.
//
// A store must make LastID and Channels agree: every message with an id in
// (Since, LastID] on a readable requested channel is in Channels, and no
// message with a larger id is. It is what lets a reader continue with
// since=LastID and neither miss nor repeat a message. LastID is the newest
// id in the hub, or, when ReadQuery.MaxBytes left messages out, the id of
// the last message in Channels.
type ReadResult struct {
	// Since is the query's since, clamped to LastID.
	Since int64
	// LastID is the newest message id in the hub at the snapshot, or the
	// last message's of a result cut at ReadQuery.MaxBytes.
	LastID int64
	// Channels holds one entry per readable requested channel, in request
	// order; unknown channels, and session channels for anonymous reads, are
	// left out.
	Channels []ChannelMessages
	// Cut says that the result was cut at ReadQuery.MaxBytes: the store
	// holds messages of the read's channels after LastID. A store that
	// cuts a result must set it; the hub relies on it to know when a
	// stream must look again before it waits (see Stream).
	Cut bool
}

// HasMessages reports whether any channel of the result has a message.
func (r *ReadResult) HasMessages() bool {
	for i := range r.Channels {
		if len(r.Channels[i].Messages) > 0 {
			return true
		}
	}
	return false
}

// ChannelMessages is one channel's part of a read.
type ChannelMessages struct {
	ID       string
	Messages []Message
}

// EventKind says what happened to a channel.
type EventKind uint8

const (
	// EventPublished: the channel got a message.
	EventPublished EventKind = iota + 1
	// EventDeleted: the channel was deleted.
	EventDeleted
	// EventResync: the store may have missed notifications (a shared store
	// reconnected); every held read must look again. Channel is empty.
	EventResync
)

// Event is a notification from a store to its hub.
type Event struct {
	Kind    EventKind
	Channel string
}

// The limits of a Status, which make the status of a hub of any size a
// reply of bounded size: at most StatusListLimit channels, as many clients,
// and StatusReadersLimit readers over all its channels, so at most
// 3,000 ids (each at most MaxIDLength bytes).
const (
	// StatusListLimit bounds the channels and the clients a Status lists.
	StatusListLimit = 1000
	// StatusReadersPerChannel bounds the readers a Status lists for one
	// channel, so that a few crowded channels do not take all of
	// StatusReadersLimit.
	StatusReadersPerChannel = 100
	// StatusReadersLimit bounds the readers a Status lists over all its
	// channels: each listed channel, in order, lists up to
	// StatusReadersPerChannel of what is left, and those after it is spent
	// list none. Every channel still counts all its readers.
	StatusReadersLimit = 1000
)

// Counts are a hub's sizes.
type Counts struct {
	// Channels and Clients are the live channels and session clients.
	Channels, Clients int
	// Messages is the number of retained messages over all channels, or
	// -1 where the store does not count them (Redis, where messages go with
	// their channel's keys when those expire, unseen, and a count would
	// take a pass over every channel).
	Messages int
}

// Status is a listing of a hub's state, its lists cut at StatusListLimit.
type Status struct {
	Channels []ChannelStatus
	Clients  []string
	// Counts are the hub's sizes, whatever the lists hold.
	Counts Counts
}

// ChannelStatus describes one channel in Status.
type ChannelStatus struct {
	ID            string `json:"channel_id"`
	UseSessions   bool   `json:"use_sessions"`
	MaxMessages   int    `json:"max_messages"`
	MessagesCount int    `json:"messages_count"`
	// Clients are the channel's readers, as many as StatusReadersPerChannel
	// and StatusReadersLimit let it list; ClientsCount counts them all.
	Clients      []string `json:"clients"`
	ClientsCount int      `json:"clients_count"`
}
