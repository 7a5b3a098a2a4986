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
)

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

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	comet [<matcher>] {
//		hub                      <name>
//		http_timeout             <duration>
//		session_timeout          <duration>
//		inactive_channel_timeout <duration>
//		messages_per_channel     <n>
//		quote_json
//		enable_status
//		max_message_size         <size>
//		max_reply_size           <size>
//		max_channels_per_read    <n>
//		max_held_connections     <n>
//		max_held_per_ip          <n>
//		max_channels             <n>
//		max_clients              <n>
//		max_retained_messages    <n>
//		idempotency_window       <duration>
//		max_idempotency_keys     <n>
//		allow                    <operation...>
//		store                    <module> [<args...>] [{ ... }]
//		jwt                      { ... }
//	}
//
// Durations are Caddy durations (30s, 1m) or bare integers in seconds, like
// the original server's switches. Sizes take units (64KiB, 1MB).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "hub":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Hub = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "http_timeout":
			if err := parseDuration(d, &h.HTTPTimeout); err != nil {
				return err
			}
		case "session_timeout":
			if err := parseDuration(d, &h.SessionTimeout); err != nil {
				return err
			}
		case "inactive_channel_timeout":
			var v caddy.Duration
			if err := parseDuration(d, &v); err != nil {
				return err
			}
			h.InactiveChannelTimeout = &v
		case "messages_per_channel":
			if err := parseInt(d, &h.MessagesPerChannel, 1); err != nil {
				return err
			}
		case "quote_json":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.QuoteJSON = true
		case "enable_status":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.EnableStatus = true
		case "max_message_size":
			if err := parseSize(d, &h.MaxMessageSize, math.MaxInt64); err != nil {
				return err
			}
		case "max_reply_size":
			if err := parseSize(d, &h.MaxReplySize, math.MaxInt32); err != nil {
				return err
			}
		case "max_channels_per_read":
			if err := parseInt(d, &h.MaxChannelsPerRead, 1); err != nil {
				return err
			}
		case "max_held_connections", "max_held_per_ip", "max_channels", "max_clients":
			// Limits where 0, no limit, differs from leaving them unset.
			limit := map[string]**int{
				"max_held_connections": &h.MaxHeldConnections,
				"max_held_per_ip":      &h.MaxHeldPerIP,
				"max_channels":         &h.MaxChannels,
				"max_clients":          &h.MaxClients,
			}[d.Val()]
			*limit = new(int)
			if err := parseInt(d, *limit, 0); err != nil {
				return err
			}
		case "max_retained_messages":
			if err := parseInt(d, &h.MaxRetainedMessages, 1); err != nil {
				return err
			}
		case "idempotency_window":
			if err := parseDuration(d, &h.IdempotencyWindow); err != nil {
				return err
			}
			if h.IdempotencyWindow == 0 {
				return d.Errf("idempotency_window: must be more than 0")
			}
		case "max_idempotency_keys":
			if err := parseInt(d, &h.MaxIdempotencyKeys, 1); err != nil {
				return err
			}
		case "allow":
			h.Allow = d.RemainingArgs()
			if len(h.Allow) == 0 {
				return d.ArgErr()
			}
			for _, op := range h.Allow {
				if op != OpSubscribe && op != OpPublish && op != OpManage && op != OpStatus {
					return d.Errf("allow: unknown operation %q (want subscribe, publish, manage or status)", op)
				}
			}
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "comet.stores."+name)
			if err != nil {
				return err
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "store", name, nil)
		case "jwt":
			if err := unmarshalJWT(d, &h.JWT); err != nil {
				return err
			}
		default:
			return d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// parseDuration reads one duration argument: a Caddy duration or a bare
// number of seconds.
func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	val := d.Val()
	if secs, err := strconv.Atoi(val); err == nil {
		if secs < 0 {
			return d.Errf("%s: must not be negative, got %q", name, val)
		}
		if secs > math.MaxInt64/int(time.Second) {
			return d.Errf("%s: %q seconds is too long", name, val)
		}
		*dst = caddy.Duration(time.Duration(secs) * time.Second)
	} else {
		dur, err := caddy.ParseDuration(val)
		if err != nil {
			return d.Errf("%s: invalid duration %q: %v", name, val, err)
		}
		if dur < 0 {
			return d.Errf("%s: must not be negative, got %q", name, val)
		}
		*dst = caddy.Duration(dur)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// parseInt reads one integer argument of at least minimum.
// parseSize reads one size argument (64KiB, 1MB, or bytes), from 1 to
// maximum.
func parseSize(d *caddyfile.Dispenser, dst *int64, maximum uint64) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	size, err := humanize.ParseBytes(d.Val())
	if err != nil || size == 0 || size > maximum {
		return d.Errf("%s: invalid size %q", name, d.Val())
	}
	*dst = int64(size)
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseInt(d *caddyfile.Dispenser, dst *int, minimum int) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n < minimum {
		return d.Errf("%s: want an integer of at least %d, got %q", name, minimum, d.Val())
	}
	*dst = n
	if d.NextArg() {
		return d.ArgErr()
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

var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
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
			if !d.NextArg() {
				return d.ArgErr()
			}
			*field = d.Val()
			if d.NextArg() {
				return d.ArgErr()
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
