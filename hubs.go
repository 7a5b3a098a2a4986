package comet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

// hubs holds every running hub, keyed by hub name and store configuration.
// A hub outlives the configurations that use it: a reload provisions the new
// configuration (which finds the hub here) before it cleans up the old one.
var hubs = caddy.NewUsagePool()

type pooledHub struct{ *hub.Hub }

// Destruct closes the hub once no configuration uses it.
func (p pooledHub) Destruct() error { return p.Close() }

// hubUse is one hub as this configuration's handlers asked for it.
type hubUse struct {
	poolKey  string
	storeRaw json.RawMessage
	settings hubSettings
	hub      *hub.Hub
}

// hub returns the hub named name for a handler, creating it on first use.
// Handlers that name the same hub must agree on its store and on every
// setting both of them set; a setting only one of them sets applies to both.
func (a *App) hub(name string, s hubSettings, storeRaw json.RawMessage, store func() (StoreOpener, error)) (*hub.Hub, error) {
	if use, ok := a.hubs[name]; ok {
		if !bytes.Equal(storeKey(use.storeRaw), storeKey(storeRaw)) {
			return nil, fmt.Errorf("hub %q: routes name different stores (%s and %s); give them different hub names or the same store",
				name, storeLabel(use.storeRaw), storeLabel(storeRaw))
		}
		merged, err := use.settings.merge(s)
		if err == nil {
			err = merged.check()
		}
		if err != nil {
			return nil, fmt.Errorf("hub %q: %w", name, err)
		}
		use.settings = merged
		use.hub.SetConfig(merged.config())
		return use.hub, nil
	}

	if err := s.check(); err != nil {
		return nil, fmt.Errorf("hub %q: %w", name, err)
	}
	opener, err := store()
	if err != nil {
		return nil, fmt.Errorf("hub %q: loading store: %w", name, err)
	}
	key := name + "\x00" + string(storeKey(storeRaw))
	val, loaded, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		h, err := hub.New(name, s.config(), opener.OpenStore)
		if err != nil {
			return nil, err
		}
		return pooledHub{h}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub %q: %w", name, err)
	}
	h := val.(pooledHub).Hub
	if loaded {
		// A reload: the hub keeps its state and takes the new settings.
		h.SetConfig(s.config())
	}
	a.logger.Info("hub ready", zap.String("hub", name), zap.String("store", storeLabel(storeRaw)), zap.Bool("reused", loaded))
	a.hubs[name] = &hubUse{poolKey: key, storeRaw: storeRaw, settings: s, hub: h}
	a.metrics.add(name, h)
	return h, nil
}

// storeKey identifies a store configuration: no store is the memory store,
// so a route (or a reload) that spells out "store memory" gets the same hub
// as one that leaves it out.
func storeKey(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		raw = json.RawMessage(`{"store":"memory"}`)
	}
	return compactJSON(raw)
}

func compactJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

func storeLabel(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "memory"
	}
	var v struct {
		Store string `json:"store"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.Store
}

// hubSettings are the handler fields that belong to the hub rather than to
// the route. Zero means "not set here".
type hubSettings struct {
	HTTPTimeout            time.Duration
	SessionTimeout         time.Duration
	InactiveChannelTimeout *time.Duration
	MessagesPerChannel     int
	MaxMessageSize         int64
	MaxChannelsPerRead     int
	MaxHeldConnections     *int
	MaxHeldPerIP           *int
	MaxChannels            *int
	MaxClients             *int
	MaxRetainedMessages    int
	MaxReplySize           int64
	IdempotencyWindow      time.Duration
	MaxIdempotencyKeys     int
}

func (s hubSettings) config() hub.Config {
	c := hub.Config{
		HTTPTimeout:        s.HTTPTimeout,
		SessionTimeout:     s.SessionTimeout,
		MessagesPerChannel: s.MessagesPerChannel,
		MaxMessageSize:     int(s.MaxMessageSize),
		MaxChannelsPerRead: s.MaxChannelsPerRead,
	}
	if s.InactiveChannelTimeout != nil {
		c.InactiveChannelTimeout = *s.InactiveChannelTimeout
		if c.InactiveChannelTimeout == 0 {
			c.InactiveChannelTimeout = -1 // off
		}
	}
	if s.MaxHeldConnections != nil {
		c.MaxHeldConnections = *s.MaxHeldConnections
	}
	if s.MaxHeldPerIP != nil {
		c.MaxHeldPerPeer = *s.MaxHeldPerIP
	}
	c.MaxChannels = hubLimit(s.MaxChannels)
	c.MaxClients = hubLimit(s.MaxClients)
	c.MaxRetainedMessages = s.MaxRetainedMessages
	c.MaxReplySize = int(min(s.MaxReplySize, math.MaxInt32))
	c.IdempotencyWindow = s.IdempotencyWindow
	c.MaxIdempotencyKeys = s.MaxIdempotencyKeys
	return c
}

// merge combines the settings of two routes of one hub, refusing values
// that differ.
func (s hubSettings) merge(o hubSettings) (hubSettings, error) {
	var err error
	pick := func(name string, a, b any, aSet, bSet bool) bool {
		if aSet && bSet && a != b && err == nil {
			err = fmt.Errorf("%s differs between routes (%v and %v)", name, a, b)
		}
		return !aSet && bSet
	}
	if pick("http_timeout", s.HTTPTimeout, o.HTTPTimeout, s.HTTPTimeout != 0, o.HTTPTimeout != 0) {
		s.HTTPTimeout = o.HTTPTimeout
	}
	if pick("session_timeout", s.SessionTimeout, o.SessionTimeout, s.SessionTimeout != 0, o.SessionTimeout != 0) {
		s.SessionTimeout = o.SessionTimeout
	}
	if pick("inactive_channel_timeout", deref(s.InactiveChannelTimeout), deref(o.InactiveChannelTimeout), s.InactiveChannelTimeout != nil, o.InactiveChannelTimeout != nil) {
		s.InactiveChannelTimeout = o.InactiveChannelTimeout
	}
	if pick("messages_per_channel", s.MessagesPerChannel, o.MessagesPerChannel, s.MessagesPerChannel != 0, o.MessagesPerChannel != 0) {
		s.MessagesPerChannel = o.MessagesPerChannel
	}
	if pick("max_message_size", s.MaxMessageSize, o.MaxMessageSize, s.MaxMessageSize != 0, o.MaxMessageSize != 0) {
		s.MaxMessageSize = o.MaxMessageSize
	}
	if pick("max_channels_per_read", s.MaxChannelsPerRead, o.MaxChannelsPerRead, s.MaxChannelsPerRead != 0, o.MaxChannelsPerRead != 0) {
		s.MaxChannelsPerRead = o.MaxChannelsPerRead
	}
	if pick("max_held_connections", deref(s.MaxHeldConnections), deref(o.MaxHeldConnections), s.MaxHeldConnections != nil, o.MaxHeldConnections != nil) {
		s.MaxHeldConnections = o.MaxHeldConnections
	}
	if pick("max_held_per_ip", deref(s.MaxHeldPerIP), deref(o.MaxHeldPerIP), s.MaxHeldPerIP != nil, o.MaxHeldPerIP != nil) {
		s.MaxHeldPerIP = o.MaxHeldPerIP
	}
	if pick("max_channels", deref(s.MaxChannels), deref(o.MaxChannels), s.MaxChannels != nil, o.MaxChannels != nil) {
		s.MaxChannels = o.MaxChannels
	}
	if pick("max_clients", deref(s.MaxClients), deref(o.MaxClients), s.MaxClients != nil, o.MaxClients != nil) {
		s.MaxClients = o.MaxClients
	}
	if pick("max_reply_size", s.MaxReplySize, o.MaxReplySize, s.MaxReplySize != 0, o.MaxReplySize != 0) {
		s.MaxReplySize = o.MaxReplySize
	}
	if pick("max_retained_messages", s.MaxRetainedMessages, o.MaxRetainedMessages, s.MaxRetainedMessages != 0, o.MaxRetainedMessages != 0) {
		s.MaxRetainedMessages = o.MaxRetainedMessages
	}
	if pick("idempotency_window", s.IdempotencyWindow, o.IdempotencyWindow, s.IdempotencyWindow != 0, o.IdempotencyWindow != 0) {
		s.IdempotencyWindow = o.IdempotencyWindow
	}
	if pick("max_idempotency_keys", s.MaxIdempotencyKeys, o.MaxIdempotencyKeys, s.MaxIdempotencyKeys != 0, o.MaxIdempotencyKeys != 0) {
		s.MaxIdempotencyKeys = o.MaxIdempotencyKeys
	}
	return s, err
}

// hubLimit is a hub size limit as hub.Config takes it: unset (nil) takes
// the hub's default, and 0, no limit, is negative there.
func hubLimit(n *int) int {
	switch {
	case n == nil:
		return 0
	case *n == 0:
		return -1
	}
	return *n
}

// check refuses settings that contradict each other once the routes of a
// hub are merged.
func (s hubSettings) check() error {
	cfg := s.config().Normalize()
	if cfg.MessagesPerChannel > cfg.MaxRetainedMessages {
		return fmt.Errorf("messages_per_channel %d is over max_retained_messages %d", cfg.MessagesPerChannel, cfg.MaxRetainedMessages)
	}
	if least := hub.MinReplySize(cfg.MaxMessageSize, cfg.MaxChannelsPerRead); cfg.MaxReplySize < least {
		return fmt.Errorf("max_reply_size %d cannot hold one message of max_message_size %d in a read of max_channels_per_read %d: it must be at least %d",
			cfg.MaxReplySize, cfg.MaxMessageSize, cfg.MaxChannelsPerRead, least)
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
