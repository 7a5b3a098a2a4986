// Package hub is a long-polling publish/subscribe engine: channels that retain
// their newest messages, session clients, message ids that increase across the
// whole hub, and reads that are held until a message arrives.
//
// It knows nothing of HTTP or Caddy. A Hub validates input, holds reads and
// wakes them; a Store (memory, or Redis for several processes) keeps the state.
package hub

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simple-comet/caddy-comet/internal/offstack"
)

// Config holds a hub's settings, as the engine takes them; the Caddy module
// reads them from its HubSettings, which name them in JSON and the
// Caddyfile. Zero values take the defaults named on each field; Normalize
// applies them. A setting that can be turned off (a limit, or an expiry) is
// turned off with Off.
type Config struct {
	// HTTPTimeout is how long a read is held before it is answered empty.
	// Default: 30s.
	HTTPTimeout time.Duration

	// SessionTimeout is how long a registered client lives after its last
	// read. Default: 60s.
	SessionTimeout time.Duration

	// InactiveChannelTimeout is how long a channel lives with no reads and
	// no publishes. Default: 90s. Off: channels never expire.
	InactiveChannelTimeout time.Duration

	// MessagesPerChannel is how many messages a channel retains when it is
	// registered without max_messages. Default: 100.
	MessagesPerChannel int

	// MaxMessageSize is the largest message content in bytes.
	// Default: 64 KiB.
	MaxMessageSize int

	// MaxChannelsPerRead is the most channels one read may name.
	// Default: 64.
	MaxChannelsPerRead int

	// MaxHeldConnections is the most reads held at once; reads beyond it
	// get ErrTooManyHeld. Default: no limit (Off).
	MaxHeldConnections int

	// MaxReplySize bounds a read's reply, in bytes: a read with more to
	// return carries the oldest messages that fit, and the reader pages on
	// with since (see page.go). Default: 1 MiB.
	MaxReplySize int

	// MaxChannels is the most live channels the hub holds; registering more
	// gets ErrHubChannelLimit. Default: 100,000. Off: no limit.
	MaxChannels int

	// MaxClients is the most live session clients the hub holds;
	// registering more gets ErrHubClientLimit. Default: 100,000. Off: no
	// limit.
	MaxClients int

	// MaxRetainedMessages is the largest max_messages a channel may be
	// registered with. Default: 1,000.
	MaxRetainedMessages int

	// IdempotencyWindow is how long a channel remembers the idempotency key
	// of a publish: another publish to the channel with that key within it
	// publishes nothing and gets the first one's message id. Default: 5m.
	IdempotencyWindow time.Duration

	// MaxIdempotencyKeys is the most idempotency keys a channel remembers;
	// beyond it the oldest is forgotten first, even within the window.
	// Default: 10,000.
	MaxIdempotencyKeys int

	// MaxHeldPerPeer is the most reads one peer (ReadRequest.Peer) holds at
	// once; its reads beyond it get ErrTooManyHeldByPeer. Reads without a
	// peer are not counted. Default: no limit (Off).
	MaxHeldPerPeer int
}

// Off turns off a setting of Config that can be off: a limit (no limit)
// or an expiry (never expires). It is the one convention for "off":
//
//   - In the Caddyfile and the handler's JSON, a setting that is left out
//     takes its default, and 0 is off.
//   - In a Config, the zero value must take the default (so that Config{}
//     is the defaults), so off is Off, and any negative value counts as
//     Off. Normalize keeps it (where the default is off, as for the
//     held-read limits, it gives 0), so in a normalized Config a setting
//     is on when it is above 0.
//   - What the hub hands its store (Expiry, ChannelSpec, ClientSpec) has
//     no defaults left to take, so there 0 is off again.
const Off = -1

// Defaults of Config.
const (
	DefaultHTTPTimeout            = 30 * time.Second
	DefaultSessionTimeout         = 60 * time.Second
	DefaultInactiveChannelTimeout = 90 * time.Second
	DefaultMessagesPerChannel     = 100
	DefaultMaxMessageSize         = 64 << 10
	DefaultMaxChannelsPerRead     = 64
	DefaultMaxChannels            = 100_000
	DefaultMaxClients             = 100_000
	DefaultMaxRetainedMessages    = 1_000
	DefaultMaxReplySize           = 1 << 20
	DefaultIdempotencyWindow      = 5 * time.Minute
	DefaultMaxIdempotencyKeys     = 10_000
)

// Normalize returns c with defaults in place of zero values.
func (c Config) Normalize() Config {
	orDefault(&c.HTTPTimeout, DefaultHTTPTimeout)
	orDefault(&c.SessionTimeout, DefaultSessionTimeout)
	orDefaultOrOff(&c.InactiveChannelTimeout, DefaultInactiveChannelTimeout)
	orDefault(&c.MessagesPerChannel, DefaultMessagesPerChannel)
	orDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	orDefault(&c.MaxChannelsPerRead, DefaultMaxChannelsPerRead)
	orDefault(&c.MaxReplySize, DefaultMaxReplySize)
	orDefaultOrOff(&c.MaxChannels, DefaultMaxChannels)
	orDefaultOrOff(&c.MaxClients, DefaultMaxClients)
	orDefault(&c.MaxRetainedMessages, DefaultMaxRetainedMessages)
	orDefault(&c.IdempotencyWindow, DefaultIdempotencyWindow)
	orDefault(&c.MaxIdempotencyKeys, DefaultMaxIdempotencyKeys)
	// The held-read limits are off by default: Off and zero are one, and
	// normalize to zero.
	c.MaxHeldConnections = max(c.MaxHeldConnections, 0)
	c.MaxHeldPerPeer = max(c.MaxHeldPerPeer, 0)
	return c
}

// orDefault sets a setting that cannot be off to def unless it is above 0.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// orDefaultOrOff sets a setting that can be off to def when it is zero, and
// to Off when it is negative.
func orDefaultOrOff[T int | time.Duration](v *T, def T) {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		*v = Off
	}
}

// limit is a limit of Config as a store takes it: 0 for none (see Off).
func limit(n int) int { return max(n, 0) }

// expiry is the expiry of Config as a store takes it: 0 for never (see
// Off).
func (c Config) expiry() Expiry {
	return Expiry{
		SessionTimeout:         c.SessionTimeout,
		InactiveChannelTimeout: max(c.InactiveChannelTimeout, 0),
		IdempotencyWindow:      c.IdempotencyWindow,
	}
}

// Hub is one pub/sub namespace. It is safe for concurrent use. Its settings
// may change while it runs (SetConfig); its store may not.
type Hub struct {
	store   timedStore
	sweeper Sweeper // the store, when it sweeps its own expiry
	// inlineReads: the store is an InlineReader.
	inlineReads bool
	config      atomic.Pointer[Config]
	waiters     *waiters
	sharedReads *sharedReads
	// ticks orders store notifications, the moments reads need their
	// snapshot to come after, and the starts of store reads; the rule is
	// sharedReads'.
	ticks     atomic.Uint64
	deadlines *deadlines
	// storeReaders run the store reads of a store that is not an
	// InlineReader (see Hub.snapshot).
	storeReaders *offstack.Runner
	stats        Stats
	held         atomic.Int64
	heldBy       *heldByPeer

	stopMaintenance chan struct{}
	maintenanceDone chan struct{}
	// reconfigured tells the maintenance loop that the settings changed
	// (SetConfig), so that it runs at once and from then on at the new
	// interval: renewals the store deferred must not wait out an interval
	// made for longer timeouts than the new ones.
	reconfigured chan struct{}
	closeOnce    sync.Once
}

// New creates the hub named name, which keeps its state in the store that
// open returns.
func New(name string, cfg Config, open func(StoreOptions) (Store, error)) (*Hub, error) {
	h := &Hub{
		waiters:     newWaiters(),
		sharedReads: newSharedReads(),
		heldBy:      newHeldByPeer(),
		deadlines:   newDeadlines(100 * time.Millisecond),
		// Store reads wait on the network: a few idle readers per CPU
		// keep a burst of them (one per share key a publish wakes) from
		// starting goroutines.
		storeReaders:    offstack.New(2*runtime.GOMAXPROCS(0), 0),
		stopMaintenance: make(chan struct{}),
		maintenanceDone: make(chan struct{}),
	}
	h.SetConfig(cfg)
	h.reconfigured = make(chan struct{}, 1)
	store, err := open(StoreOptions{Notify: h.notify, Hub: name})
	if err != nil {
		h.deadlines.stop()
		return nil, fmt.Errorf("opening store: %w", err)
	}
	h.store = timedStore{Store: store, latency: &h.stats.StoreLatency}
	h.sweeper, _ = store.(Sweeper)
	_, h.inlineReads = store.(InlineReader)
	go h.maintain()
	return h, nil
}

// NewMemory creates a hub on a new memory store.
func NewMemory(cfg Config) *Hub {
	h, _ := New("default", cfg, func(o StoreOptions) (Store, error) { return NewMemoryStore(o), nil })
	return h
}

// SetConfig replaces the hub's settings; held reads keep the timeout they
// started with.
func (h *Hub) SetConfig(cfg Config) {
	cfg = cfg.Normalize()
	h.config.Store(&cfg)
	if h.reconfigured != nil {
		select {
		case h.reconfigured <- struct{}{}:
		default: // one is pending already
		}
	}
}

// Config returns the hub's current settings.
func (h *Hub) Config() Config { return *h.config.Load() }

// Stats returns the hub's running totals.
func (h *Hub) Stats() *Stats { return &h.stats }

// Held returns the number of reads held now: registered for wake-ups and
// waiting for one, so that whatever happens next reaches them.
func (h *Hub) Held() int { return int(h.held.Load()) }

func (h *Hub) notify(e Event) {
	// The waiters woken keep the event's tick (the rule is sharedReads').
	tick := h.ticks.Add(1)
	switch e.Kind {
	case EventPublished:
		h.waiters.wake(e.Channel, wakePublished, tick)
	case EventDeleted:
		h.waiters.wake(e.Channel, wakeDeleted, tick)
	case EventResync:
		h.waiters.wakeAll(wakePublished, tick)
	}
}

// RegisterChannel creates a channel. maxMessages 0 takes the hub's
// MessagesPerChannel.
func (h *Hub) RegisterChannel(ctx context.Context, id string, useSessions bool, maxMessages int) error {
	if id == "" {
		return ErrMissingChannelID
	}
	if err := ValidateChannelID(id); err != nil {
		return err
	}
	cfg := h.config.Load()
	if maxMessages < 0 {
		return ErrInvalidMaxMessages
	}
	if maxMessages == 0 {
		maxMessages = cfg.MessagesPerChannel
	}
	if maxMessages > cfg.MaxRetainedMessages {
		return ErrInvalidMaxMessages.With(fmt.Sprintf("at most %d", cfg.MaxRetainedMessages))
	}
	spec := ChannelSpec{ID: id, UseSessions: useSessions, MaxMessages: maxMessages, MaxChannels: limit(cfg.MaxChannels)}
	if err := h.store.CreateChannel(ctx, spec, cfg.expiry()); err != nil {
		if errors.Is(err, ErrHubChannelLimit) {
			return ErrHubChannelLimit.With(fmt.Sprintf("at most %d", spec.MaxChannels))
		}
		return wrapStore(err, "registering channel %q", id)
	}
	return nil
}

// Publish appends content to a channel and wakes the reads held on it.
func (h *Hub) Publish(ctx context.Context, channel, content string) (Message, error) {
	p, err := h.PublishOnce(ctx, channel, content, "")
	return p.Message, err
}

// PublishOnce is Publish with an idempotency key: when key is not empty
// and the channel has had a publish with the same key within the hub's
// IdempotencyWindow, it publishes nothing and returns that publish's
// message id, with Replayed set. An empty key publishes every time.
func (h *Hub) PublishOnce(ctx context.Context, channel, content, key string) (Published, error) {
	if channel == "" {
		return Published{}, ErrMissingChannelID
	}
	if err := ValidateChannelID(channel); err != nil {
		return Published{}, err
	}
	if key != "" {
		if err := ValidateIdempotencyKey(key); err != nil {
			return Published{}, err
		}
	}
	if content == "" {
		return Published{}, ErrMissingContent
	}
	cfg := h.config.Load()
	if len(content) > cfg.MaxMessageSize {
		return Published{}, ErrMessageTooLarge.With(fmt.Sprintf("over %d bytes", cfg.MaxMessageSize))
	}
	encoded, err := EncodeContent(content)
	if err != nil {
		return Published{}, err
	}
	pub := Publication{Channel: channel, Encoded: encoded, IdempotencyKey: key, MaxIdempotencyKeys: cfg.MaxIdempotencyKeys}
	p, err := h.store.Publish(ctx, pub, time.Now(), cfg.expiry())
	if err != nil {
		return Published{}, wrapStore(err, "publishing to %q", channel)
	}
	if p.Replayed {
		h.stats.Replayed.Add(1)
	} else {
		h.stats.Published.Add(1)
	}
	return p, nil
}

// RegisterClient creates a session client.
func (h *Hub) RegisterClient(ctx context.Context, id string) error {
	if id == "" {
		return ErrMissingClientID
	}
	if err := ValidateClientID(id); err != nil {
		return err
	}
	cfg := h.config.Load()
	spec := ClientSpec{ID: id, MaxClients: limit(cfg.MaxClients)}
	if err := h.store.CreateClient(ctx, spec, cfg.expiry()); err != nil {
		if errors.Is(err, ErrHubClientLimit) {
			return ErrHubClientLimit.With(fmt.Sprintf("at most %d", spec.MaxClients))
		}
		return wrapStore(err, "registering client %q", id)
	}
	return nil
}

// DeleteChannel removes a channel and releases the reads held on it.
func (h *Hub) DeleteChannel(ctx context.Context, id string) (removed bool, err error) {
	if id == "" {
		return false, ErrMissingChannelID
	}
	if err := ValidateChannelID(id); err != nil {
		return false, err
	}
	removed, err = h.store.DeleteChannel(ctx, id)
	if err != nil {
		return false, wrapStore(err, "deleting channel %q", id)
	}
	return removed, nil
}

// Counts returns the hub's sizes, at a cost that does not grow with them.
func (h *Hub) Counts(ctx context.Context) (Counts, error) {
	c, err := h.store.Counts(ctx)
	if err != nil {
		return Counts{}, wrapStore(err, "counting")
	}
	return c, nil
}

// Status lists the hub's channels and clients, at most StatusListLimit of
// each, the channels' readers within StatusReadersLimit, and its Counts.
func (h *Hub) Status(ctx context.Context) (Status, error) {
	st, err := h.store.Status(ctx)
	if err != nil {
		return Status{}, wrapStore(err, "reading status")
	}
	return st, nil
}

// PingTimeout bounds Ping: a store that takes longer to answer counts as
// unavailable. A load balancer probes every few seconds and wants a verdict
// well within its own timeout (Caddy's health_timeout defaults to 5s), and a
// store that takes a second to answer a request that does nothing is no use
// to held reads either.
const PingTimeout = time.Second

// Ping probes the hub's store: nil when it answered within PingTimeout (or
// its own timeout, if shorter), a store failure (-4 by AsError) otherwise.
// Ping changes nothing, and it is not timed for the store latency metric:
// a load balancer's probes would swamp the latency of real calls.
func (h *Hub) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := h.store.Store.Ping(ctx); err != nil {
		return wrapStore(err, "probing the store")
	}
	return nil
}

// wrapStore adds context to store failures and leaves API errors as they
// are, so that callers can still tell one from the other with AsError.
func wrapStore(err error, format string, args ...any) error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// Close stops the hub's goroutines, answers its held reads and closes the
// store.
func (h *Hub) Close() error {
	var err error
	h.closeOnce.Do(func() {
		close(h.stopMaintenance)
		// Held reads end with ReleasedStopped: those registered now are
		// woken, and any later one finds stopMaintenance closed before it
		// waits (see Hub.wait).
		h.waiters.wakeAll(wakeStopped, h.ticks.Add(1))
		<-h.maintenanceDone
		h.deadlines.stop()
		h.storeReaders.Close()
		err = h.store.Close()
	})
	return err
}

// maintain keeps held reads' channels and clients alive and, for stores that
// need it, sweeps expired ones.
func (h *Hub) maintain() {
	defer close(h.maintenanceDone)
	for {
		interval := h.maintenanceInterval()
		select {
		case <-h.stopMaintenance:
			return
		case <-time.After(interval):
		case <-h.reconfigured:
			interval = h.maintenanceInterval()
		}
		cfg := h.config.Load()
		exp := cfg.expiry()
		channels, clients := h.waiters.held()
		// With nothing held, Touch still runs (untimed, as it may do
		// nothing): the store renews there the reads whose renewal it
		// deferred (ReadQuery.DeferRenewal).
		touch := h.store.Store.Touch
		if len(channels) > 0 || len(clients) > 0 {
			touch = h.store.Touch
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		// A failed touch is retried on the next tick; the store reports
		// its own outages.
		_ = touch(ctx, channels, clients, exp)
		cancel()
		if h.sweeper != nil {
			h.sweeper.Sweep(time.Now(), exp)
		}
	}
}

// maintenanceInterval is a third of the shortest expiry, so that a held
// read's channel and client are renewed well before they could expire.
func (h *Hub) maintenanceInterval() time.Duration {
	cfg := h.config.Load()
	d := cfg.SessionTimeout
	if cfg.InactiveChannelTimeout > 0 && cfg.InactiveChannelTimeout < d {
		d = cfg.InactiveChannelTimeout
	}
	return min(max(d/3, 50*time.Millisecond), 10*time.Second)
}
