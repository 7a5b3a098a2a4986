package comet

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/simple-comet/caddy-comet/comethttp"
)

// All Caddyfile parsing is here, as reverseproxy/caddyfile.go does it; the
// syntax of each module is documented on its type.

func init() {
	httpcaddyfile.RegisterHandlerDirective("comet", parseCaddyfile)
	// The API answers its own paths and passes everything else on, so it
	// goes before the handlers that answer everything.
	httpcaddyfile.RegisterDirectiveOrder("comet", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from the comet directive, whose
// syntax Handler shows.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachInBlock(d, h.unmarshalSubdirective)
}

// unmarshalSubdirective reads the subdirective at d into h. A hub setting
// is named as its HubSettings field is in JSON.
func (h *Handler) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	s := &h.HubSettings
	switch name := d.Val(); name {
	case "hub":
		return parseString(d, &h.Hub)
	case "quote_json":
		return parseFlag(d, &h.QuoteJSON)
	case "enable_status":
		return parseFlag(d, &h.EnableStatus)
	case "allow":
		h.Allow = d.RemainingArgs()
		if len(h.Allow) == 0 {
			return d.ArgErr()
		}
		if err := comethttp.CheckAllow(h.Allow); err != nil {
			return d.WrapErr(err)
		}
	case "allow_cross_site":
		h.AllowCrossSite = d.RemainingArgs()
		if len(h.AllowCrossSite) == 0 {
			return d.ArgErr()
		}
		// Whether the route allows them is known once the block is
		// read, in Provision.
		if err := comethttp.CheckAllowCrossSite(h.AllowCrossSite, nil); err != nil {
			return d.WrapErr(err)
		}
	case "sse_heartbeat":
		if err := parseDuration(d, &h.SSEHeartbeat); err != nil {
			return err
		}
		if h.SSEHeartbeat == 0 {
			return d.Errf("%s: must be more than 0", name)
		}
	case "store":
		if !d.NextArg() {
			return d.ArgErr()
		}
		module := d.Val()
		unm, err := caddyfile.UnmarshalModule(d, "comet.stores."+module)
		if err != nil {
			return err
		}
		h.StoreRaw = caddyconfig.JSONModuleObject(unm, "store", module, nil)

	case "jwt":
		return unmarshalJWT(d, &h.JWT)

	case "http_timeout":
		return parseDuration(d, &s.HTTPTimeout)
	case "session_timeout":
		return parseDuration(d, &s.SessionTimeout)
	case "inactive_channel_timeout":
		return parseDuration(d, setPointer(&s.InactiveChannelTimeout))
	case "messages_per_channel":
		return parseInt(d, &s.MessagesPerChannel, 1)
	case "max_message_size":
		return parseSize(d, &s.MaxMessageSize, math.MaxInt64)
	case "max_reply_size":
		return parseSize(d, &s.MaxReplySize, maxReplySize)
	case "max_channels_per_read":
		return parseInt(d, &s.MaxChannelsPerRead, 1)
	case "max_held_connections":
		return parseInt(d, setPointer(&s.MaxHeldConnections), 0)
	case "max_held_per_ip":
		return parseInt(d, setPointer(&s.MaxHeldPerIP), 0)
	case "ipv6_prefix_per_ip":
		val, err := oneArg(d)
		if err != nil {
			return err
		}
		bits, err := strconv.Atoi(val)
		if err != nil || bits < 1 || bits > 128 {
			return d.Errf("%s: want a prefix length from 1 to 128, got %q", name, val)
		}
		s.IPv6PrefixPerIP = bits
	case "max_channels":
		return parseInt(d, setPointer(&s.MaxChannels), 0)
	case "max_clients":
		return parseInt(d, setPointer(&s.MaxClients), 0)
	case "max_retained_messages":
		return parseInt(d, &s.MaxRetainedMessages, 1)
	case "idempotency_window":
		if err := parseDuration(d, &s.IdempotencyWindow); err != nil {
			return err
		}
		if s.IdempotencyWindow == 0 {
			return d.Errf("%s: must be more than 0", name)
		}
	case "max_idempotency_keys":
		return parseInt(d, &s.MaxIdempotencyKeys, 1)
	default:
		return d.Errf("unknown subdirective %q", name)
	}
	return nil
}

// UnmarshalCaddyfile sets up the store from `store redis`, whose syntax
// RedisStore shows.
func (r *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module's name
	if d.NextArg() {
		r.URL = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachInBlock(d, r.unmarshalOption)
}

// unmarshalOption reads the option at d into r.
func (r *RedisStore) unmarshalOption(d *caddyfile.Dispenser) error {
	switch name := d.Val(); name {
	case "addresses":
		addrs := d.RemainingArgs()
		if len(addrs) == 0 {
			return d.ArgErr()
		}
		r.Addresses = append(r.Addresses, addrs...)
	case "username":
		return parseString(d, &r.Username)
	case "password":
		return parseString(d, &r.Password)
	case "sentinel_master":
		return parseString(d, &r.SentinelMaster)
	case "sentinel_username":
		return parseString(d, &r.SentinelUsername)
	case "sentinel_password":
		return parseString(d, &r.SentinelPassword)
	case "tls_ca_file":
		return parseString(d, &r.TLSCAFile)
	case "key_prefix":
		return parseString(d, &r.KeyPrefix)
	case "dial_timeout":
		return parseDuration(d, &r.DialTimeout)
	case "read_timeout":
		return parseDuration(d, &r.ReadTimeout)
	case "min_replicas":
		return parseInt(d, &r.MinReplicas, 1)
	case "replica_timeout":
		return parseDuration(d, &r.ReplicaTimeout)
	default:
		return d.Errf("unknown store redis option %q", name)
	}
	return nil
}

// UnmarshalCaddyfile sets up the memory store: `store memory` takes no
// arguments.
func (MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module's name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("store memory takes no options")
	}
	return nil
}

// eachInBlock calls parse on each subdirective of the block at d.
func eachInBlock(d *caddyfile.Dispenser, parse func(*caddyfile.Dispenser) error) error {
	for d.NextBlock(0) {
		if err := parse(d); err != nil {
			return err
		}
	}
	return nil
}

// oneArg returns the one argument of the subdirective at d.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	val := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return val, nil
}

// parseString reads the one argument of the subdirective at d.
func parseString(d *caddyfile.Dispenser, dst *string) error {
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	*dst = val
	return nil
}

// parseFlag sets a subdirective that takes no argument.
func parseFlag(d *caddyfile.Dispenser, dst *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
	return nil
}

// parseDuration reads one duration argument: a Caddy duration or a bare
// number of seconds, as the original server's switches took them.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	var dur time.Duration
	if secs, err := strconv.Atoi(val); err == nil {
		if secs > math.MaxInt64/int(time.Second) {
			return d.Errf("%s: %q seconds is too long", name, val)
		}
		dur = time.Duration(secs) * time.Second
	} else if dur, err = caddy.ParseDuration(val); err != nil {
		return d.Errf("%s: invalid duration %q: %v", name, val, err)
	}
	if dur < 0 {
		return d.Errf("%s: must not be negative, got %q", name, val)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseSize reads one size argument (64KiB, 1MB, or bytes), from 1 to
// maximum.
func parseSize(d *caddyfile.Dispenser, dst *int64, maximum uint64) error {
	name := d.Val()
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	size, err := humanize.ParseBytes(val)
	if err != nil || size == 0 || size > maximum {
		return d.Errf("%s: invalid size %q", name, val)
	}
	*dst = int64(size)
	return nil
}

// parseInt reads one integer argument of at least minimum.
func parseInt(d *caddyfile.Dispenser, dst *int, minimum int) error {
	name := d.Val()
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < minimum {
		return d.Errf("%s: want an integer of at least %d, got %q", name, minimum, val)
	}
	*dst = n
	return nil
}

// setPointer points *p at a new zero value and returns it, for a setting
// whose 0 must read as set (see HubSettings).
func setPointer[T any](p **T) *T {
	*p = new(T)
	return *p
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
)

// unmarshalJWT reads the jwt block of the comet directive, whose syntax JWT
// shows. Keys are checked when the configuration loads, once their
// placeholders are replaced.
func unmarshalJWT(d *caddyfile.Dispenser, dst **JWT) error {
	if *dst != nil {
		return d.Err("jwt: given more than once")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	j := new(JWT)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch name := d.Val(); name {
		case "key", "public_key", "issuer", "audience":
			field := map[string]*string{"key": &j.Key, "public_key": &j.PublicKey, "issuer": &j.Issuer, "audience": &j.Audience}[name]
			if err := parseString(d, field); err != nil {
				return err
			}
		case "require":
			j.Require = d.RemainingArgs()
			if len(j.Require) == 0 {
				return d.ArgErr()
			}
			for _, op := range j.Require {
				if !slices.Contains(allOps, op) {
					return d.Errf("jwt: require: unknown operation %q (want subscribe, publish, manage or status)", op)
				}
			}
		case "leeway":
			if err := parseDuration(d, &j.Leeway); err != nil {
				return err
			}
		default:
			return d.Errf("jwt: unknown option %q", name)
		}
	}
	if j.Key == "" && j.PublicKey == "" {
		return d.Err("jwt: set key (HS256) or public_key (RS256, ES256)")
	}
	if j.Key != "" && j.PublicKey != "" {
		return d.Err("jwt: set key or public_key, not both")
	}
	*dst = j
	return nil
}
