package comet

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/simple-comet/caddy-comet/comethttp"
	"github.com/simple-comet/caddy-comet/hub"
)

// HubSettings are the settings that belong to a hub rather than to a route:
// timeouts, retention and limits. Handler embeds them, so in JSON they are
// fields of the handler; the Caddyfile subdirectives have the same names.
//
// This struct is the one list of hub settings: merging the routes of a hub,
// refusing negative values and handing the settings to the hub all walk its
// fields, naming each setting by its JSON name. Adding a hub setting takes
// a field here (with the hub.Config field of the same name, or a `hub` tag
// naming it, or `hub:"-"` for a setting the engine does not take, which
// pooledHub.setSettings then keeps beside the hub) and its subdirective in
// caddyfile.go.
//
// A field left out (zero, or nil) is not set: it takes the hub's default,
// or the value another route of the hub sets. A setting that can be turned
// off is a pointer, so that 0, which turns it off (no limit, no expiry), is
// a value of its own; see hub.Off for how "off" is spelled further in.
type HubSettings struct {
	// HTTPTimeout is how long a read is held before it is answered with no
	// messages. Default: 30s.
	HTTPTimeout caddy.Duration `json:"http_timeout,omitempty"`

	// SessionTimeout is how long a registered client lives after its last
	// read. Default: 60s.
	SessionTimeout caddy.Duration `json:"session_timeout,omitempty"`

	// InactiveChannelTimeout is how long a channel with no reads and no
	// publishes lives. 0 turns expiry off. Default: 90s.
	InactiveChannelTimeout *caddy.Duration `json:"inactive_channel_timeout,omitempty"`

	// MessagesPerChannel is how many messages a channel retains when it is
	// registered without max_messages. Default: 100.
	MessagesPerChannel int `json:"messages_per_channel,omitempty"`

	// MaxMessageSize is the largest message content, in bytes; a larger
	// publish gets 413. Default: 65536 (64KiB).
	MaxMessageSize int64 `json:"max_message_size,omitempty"`

	// MaxChannelsPerRead is the most channels one read may name.
	// Default: 64.
	MaxChannelsPerRead int `json:"max_channels_per_read,omitempty"`

	// MaxHeldConnections is the most reads the hub holds at once on this
	// server; reads beyond it get 503. 0 means no limit. Default: 0.
	MaxHeldConnections *int `json:"max_held_connections,omitempty"`

	// MaxReplySize bounds one read's reply, in bytes, under 2GiB: a read
	// with more to return carries the oldest messages that fit (always at
	// least one), and its last_id lets the client page on with since. It
	// must hold one message of max_message_size in a read of
	// max_channels_per_read channels. Default: 1048576 (1MiB).
	MaxReplySize int64 `json:"max_reply_size,omitempty"`

	// MaxChannels is the most live channels the hub holds; registering
	// more is refused (-1 "Too many channels: at most N"). 0 means no limit.
	// Default: 100000.
	MaxChannels *int `json:"max_channels,omitempty"`

	// MaxClients is the most live session clients the hub holds;
	// registering more is refused (-1 "Too many clients: at most N"). 0
	// means no limit. Default: 100000.
	MaxClients *int `json:"max_clients,omitempty"`

	// MaxRetainedMessages is the largest max_messages a channel may be
	// registered with; messages_per_channel may not exceed it. Default:
	// 1000.
	MaxRetainedMessages int `json:"max_retained_messages,omitempty"`

	// IdempotencyWindow is how long a channel remembers a publish's
	// idempotency key (the Idempotency-Key header or idempotency_key
	// field): a publish to the channel with the same key within it
	// publishes nothing and gets the first publish's message_id. Default:
	// 5m.
	IdempotencyWindow caddy.Duration `json:"idempotency_window,omitempty"`

	// MaxIdempotencyKeys is the most idempotency keys a channel remembers;
	// beyond it the oldest is forgotten first, even within the window.
	// Default: 10000.
	MaxIdempotencyKeys int `json:"max_idempotency_keys,omitempty"`

	// MaxHeldPerIP is the most reads the hub holds at once on this server
	// for one client IP address (Caddy's client IP, so trusted_proxies
	// apply); that client's reads beyond it get 503. Clients behind one NAT
	// or proxy share an address. 0 means no limit. Default: 0.
	MaxHeldPerIP *int `json:"max_held_per_ip,omitempty" hub:"MaxHeldPerPeer"`

	// IPv6PrefixPerIP is how many leading bits of an IPv6 client address
	// make one address for max_held_per_ip, from 1 to 128: one subscriber
	// is routinely given a whole /64 (or /56, /48), so counting each IPv6
	// address alone would let one client hold reads without limit. 128
	// counts each IPv6 address alone. IPv4 addresses, and IPv4-mapped IPv6
	// ones (::ffff:192.0.2.1), always count alone. It is a hub setting
	// because the hub keeps the count: two routes counting one client
	// under different keys would each give it its own allowance.
	// Default: 64 (DefaultIPv6PrefixPerIP).
	IPv6PrefixPerIP int `json:"ipv6_prefix_per_ip,omitempty" hub:"-"`
}

// DefaultIPv6PrefixPerIP is ipv6_prefix_per_ip's default: a /64 is one
// IPv6 link (the subnet SLAAC needs), the least a subscriber is given.
const DefaultIPv6PrefixPerIP = comethttp.DefaultIPv6PrefixPerIP

// maxReplySize is the largest max_reply_size, in the Caddyfile and JSON
// alike: hub.Config takes it as an int, which may have 32 bits.
const maxReplySize = math.MaxInt32

// setting is one field of HubSettings, as the walks below see it.
type setting struct {
	name  string        // the JSON name, which is also the subdirective's
	value reflect.Value // the field: an integer kind, or a pointer to one
}

// set reports whether the setting is set: a pointer that is not nil, a
// value that is not zero.
func (s setting) set() bool { return !s.value.IsZero() }

// shown is the setting's value as messages show it: durations as 1m30s.
func (s setting) shown() any {
	v := reflect.Indirect(s.value)
	if d, ok := v.Interface().(caddy.Duration); ok {
		return time.Duration(d)
	}
	return v.Interface()
}

// settingsOf returns the fields of *s in their order; setting one sets it
// in *s.
func settingsOf(s *HubSettings) []setting {
	v := reflect.ValueOf(s).Elem()
	out := make([]setting, v.NumField())
	for i := range out {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		out[i] = setting{name: name, value: v.Field(i)}
	}
	return out
}

// validate refuses values no route may set, before the routes of a hub are
// merged.
func (s HubSettings) validate() error {
	for _, st := range settingsOf(&s) {
		if st.set() && reflect.Indirect(st.value).Int() < 0 {
			return fmt.Errorf("%s must not be negative", st.name)
		}
	}
	if s.MaxReplySize > maxReplySize {
		return fmt.Errorf("max_reply_size must be at most %d", maxReplySize)
	}
	if s.IPv6PrefixPerIP > 128 {
		return fmt.Errorf("ipv6_prefix_per_ip must be a prefix length from 1 to 128, not %d", s.IPv6PrefixPerIP)
	}
	return nil
}

// merge combines the settings of two routes of one hub: a setting one of
// them sets applies to both, and one they set to different values is an
// error that names it.
func (s HubSettings) merge(o HubSettings) (HubSettings, error) {
	other := settingsOf(&o)
	for i, st := range settingsOf(&s) {
		switch theirs := other[i]; {
		case !theirs.set(): // ours stands
		case !st.set():
			st.value.Set(theirs.value)
		case st.shown() != theirs.shown():
			return s, fmt.Errorf("%s differs between routes (%v and %v)", st.name, st.shown(), theirs.shown())
		}
	}
	return s, nil
}

// config is the settings as the hub takes them: a setting left out is
// zero, the hub's default, and 0 in a pointer, off, is hub.Off.
func (s HubSettings) config() hub.Config {
	var c hub.Config
	cfg := reflect.ValueOf(&c).Elem()
	t := reflect.TypeFor[HubSettings]()
	for i, st := range settingsOf(&s) {
		field := cmp.Or(t.Field(i).Tag.Get("hub"), t.Field(i).Name)
		if field == "-" {
			continue
		}
		dst := cfg.FieldByName(field)
		if !dst.IsValid() {
			panic("comet: hub.Config has no field " + field + " for HubSettings; name it in a hub tag")
		}
		switch v := st.value; {
		case v.Kind() == reflect.Pointer && v.IsNil(): // the hub's default
		case v.Kind() == reflect.Pointer && v.Elem().IsZero():
			dst.SetInt(hub.Off)
		default:
			dst.SetInt(reflect.Indirect(v).Int())
		}
	}
	return c
}

// check refuses settings that contradict each other once the routes of a
// hub are merged.
func (s HubSettings) check() error {
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
