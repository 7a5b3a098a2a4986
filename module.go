// Package comet is a Caddy module that turns Caddy into an HTTP long-polling
// (comet) publish/subscribe hub, wire-compatible with Simple-Comet-Server.
//
// The comet app owns hubs (package hub); the http.handlers.comet handler maps
// the HTTP API onto a hub. See README.md for the API and the Caddyfile.
package comet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Handler{})
}

// Operations a route can allow.
const (
	OpSubscribe = "subscribe" // reads and the client scripts
	OpPublish   = "publish"   // publishing messages
	OpManage    = "manage"    // registering and deleting channels, registering clients
	OpStatus    = "status"    // the status call
)

var allOps = []string{OpSubscribe, OpPublish, OpManage, OpStatus}

// App is the comet app: it owns the hubs that comet handlers publish to and
// read from. It needs no configuration; handlers create hubs through it.
//
// JSON: {"apps": {"comet": {}}}
type App struct {
	ctx     caddy.Context
	logger  *zap.Logger
	hubs    map[string]*hubUse
	metrics *metricsCollector
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "comet",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision sets up the app.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.hubs = make(map[string]*hubUse)
	a.metrics = newMetricsCollector()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(a.metrics); err != nil {
			return fmt.Errorf("registering comet metrics: %w", err)
		}
	}
	return nil
}

// Start implements caddy.App; hubs start when handlers ask for them.
func (a *App) Start() error { return nil }

// Stop implements caddy.App. Held reads are answered by the handlers when
// their server shuts down; hubs are closed in Cleanup once unused.
func (a *App) Stop() error { return nil }

// Cleanup releases this configuration's hold on its hubs.
func (a *App) Cleanup() error {
	for name, use := range a.hubs {
		if _, err := hubs.Delete(use.poolKey); err != nil {
			a.logger.Error("closing hub", zap.String("hub", name), zap.Error(err))
		}
	}
	return nil
}

// Handler serves the comet API (Simple-Comet-Server's REST API) from a hub of
// the comet app. Requests that are not part of the API, and OPTIONS
// requests, go to the next handler.
//
// Hub settings (timeouts, retention, limits, store) belong to the hub: routes
// that name the same hub share them, and a setting two such routes set to
// different values is a configuration error. Route settings (quote_json,
// enable_status, allow) belong to the route.
//
// Caddyfile:
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
//		allow                    <subscribe|publish|manage|status...>
//		store                    <module> ...
//		jwt                      { ... }
//	}
//
// JSON: {"handler": "comet", "hub": "default", "http_timeout": "30s", ...,
// "store": {"store": "memory"}}
type Handler struct {
	// Hub names the hub; handlers with the same name share channels,
	// messages and clients. Default: "default".
	Hub string `json:"hub,omitempty"`

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

	// QuoteJSON wraps .json replies as /*-secure- {...} */. Default: off.
	QuoteJSON bool `json:"quote_json,omitempty"`

	// EnableStatus turns on the status call. Default: off.
	EnableStatus bool `json:"enable_status,omitempty"`

	// MaxMessageSize is the largest message content, in bytes; a larger
	// publish gets 413. Default: 65536 (64KiB).
	MaxMessageSize int64 `json:"max_message_size,omitempty"`

	// MaxChannelsPerRead is the most channels one read may name.
	// Default: 64.
	MaxChannelsPerRead int `json:"max_channels_per_read,omitempty"`

	// MaxHeldConnections is the most reads the hub holds at once on this
	// server; reads beyond it get 503. 0 means no limit. Default: 0.
	MaxHeldConnections *int `json:"max_held_connections,omitempty"`

	// MaxReplySize bounds one read's reply, in bytes: a read with more to
	// return carries the oldest messages that fit (always at least one),
	// and its last_id lets the client page on with since. It must hold one
	// message of max_message_size in a read of max_channels_per_read
	// channels. Default: 1048576 (1MiB).
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
	MaxHeldPerIP *int `json:"max_held_per_ip,omitempty"`

	// Allow lists the operations this route serves: subscribe, publish,
	// manage, status. Others get 403. Default: all of them.
	Allow []string `json:"allow,omitempty"`

	// StoreRaw is the hub's store module (namespace comet.stores).
	// Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=comet.stores inline_key=store"`

	// JWT, when set, asks for a signed token before the operations it
	// requires (see JWT). Default: none, no token asked for.
	JWT *JWT `json:"jwt,omitempty"`

	hub         *hub.Hub
	allowed     map[string]bool
	logger      *zap.Logger
	stopping    chan struct{}
	releaseHeld func() // closes stopping, once
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.comet",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the handler's hub from the comet app and arranges for held
// reads to be answered as soon as the server starts shutting down.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Hub == "" {
		h.Hub = "default"
	}
	h.allowed = make(map[string]bool)
	if len(h.Allow) == 0 {
		h.Allow = allOps
	}
	for _, op := range h.Allow {
		if !slices.Contains(allOps, op) {
			return fmt.Errorf("allow: unknown operation %q (want %s)", op, strings.Join(allOps, ", "))
		}
		h.allowed[op] = true
	}
	if err := h.validate(); err != nil {
		return err
	}
	if h.JWT != nil {
		if err := h.JWT.provision(h.logger, h.Allow); err != nil {
			return err
		}
	}

	appIface, err := ctx.App("comet")
	if err != nil {
		return fmt.Errorf("getting comet app: %w", err)
	}
	h.hub, err = appIface.(*App).hub(h.Hub, h.settings(), h.StoreRaw, func() (StoreOpener, error) {
		if len(h.StoreRaw) == 0 {
			return MemoryStore{}, nil
		}
		mod, err := ctx.LoadModule(h, "StoreRaw")
		if err != nil {
			return nil, err
		}
		return mod.(StoreOpener), nil
	})
	if err != nil {
		return err
	}

	// Caddy's grace period is eternal by default and the hub outlives this
	// configuration, so held reads must be answered when this server begins
	// to shut down (stop or reload), not when they time out.
	h.stopping = make(chan struct{})
	h.releaseHeld = sync.OnceFunc(func() { close(h.stopping) })
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(h.releaseHeld)
		h.warnShortWriteTimeouts(srv)
	}
	return nil
}

// Cleanup answers held reads that are still there when the configuration is
// unloaded (servers that never started, for one).
func (h *Handler) Cleanup() error {
	if h.releaseHeld != nil {
		h.releaseHeld()
	}
	return nil
}

func (h *Handler) validate() error {
	switch {
	case h.HTTPTimeout < 0:
		return fmt.Errorf("http_timeout must not be negative")
	case h.SessionTimeout < 0:
		return fmt.Errorf("session_timeout must not be negative")
	case h.InactiveChannelTimeout != nil && *h.InactiveChannelTimeout < 0:
		return fmt.Errorf("inactive_channel_timeout must not be negative")
	case h.MessagesPerChannel < 0:
		return fmt.Errorf("messages_per_channel must not be negative")
	case h.MaxMessageSize < 0:
		return fmt.Errorf("max_message_size must not be negative")
	case h.MaxChannelsPerRead < 0:
		return fmt.Errorf("max_channels_per_read must not be negative")
	case h.MaxHeldConnections != nil && *h.MaxHeldConnections < 0:
		return fmt.Errorf("max_held_connections must not be negative")
	case h.MaxHeldPerIP != nil && *h.MaxHeldPerIP < 0:
		return fmt.Errorf("max_held_per_ip must not be negative")
	case h.MaxChannels != nil && *h.MaxChannels < 0:
		return fmt.Errorf("max_channels must not be negative")
	case h.MaxClients != nil && *h.MaxClients < 0:
		return fmt.Errorf("max_clients must not be negative")
	case h.MaxReplySize < 0:
		return fmt.Errorf("max_reply_size must not be negative")
	case h.MaxRetainedMessages < 0:
		return fmt.Errorf("max_retained_messages must not be negative")
	case h.IdempotencyWindow < 0:
		return fmt.Errorf("idempotency_window must not be negative")
	case h.MaxIdempotencyKeys < 0:
		return fmt.Errorf("max_idempotency_keys must not be negative")
	}
	return nil
}

func (h *Handler) settings() hubSettings {
	s := hubSettings{
		HTTPTimeout:         timeDuration(h.HTTPTimeout),
		SessionTimeout:      timeDuration(h.SessionTimeout),
		MessagesPerChannel:  h.MessagesPerChannel,
		MaxMessageSize:      h.MaxMessageSize,
		MaxChannelsPerRead:  h.MaxChannelsPerRead,
		MaxHeldConnections:  h.MaxHeldConnections,
		MaxHeldPerIP:        h.MaxHeldPerIP,
		MaxChannels:         h.MaxChannels,
		MaxClients:          h.MaxClients,
		MaxRetainedMessages: h.MaxRetainedMessages,
		MaxReplySize:        h.MaxReplySize,
		IdempotencyWindow:   timeDuration(h.IdempotencyWindow),
		MaxIdempotencyKeys:  h.MaxIdempotencyKeys,
	}
	if h.InactiveChannelTimeout != nil {
		d := timeDuration(*h.InactiveChannelTimeout)
		s.InactiveChannelTimeout = &d
	}
	return s
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodOptions {
		return next.ServeHTTP(w, r)
	}
	call, ok := routeOf(r.URL.Path)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	if !h.authorize(w, r, call) {
		return nil // refused: no token, or one that does not cover the call
	}
	// Reads, the requests that are held, take the shortest way, and their
	// replies are written from this frame (see serveRead); serveAPI would
	// refuse nothing of them.
	if call.resource == resChannel && r.Method == http.MethodGet && call.formatOK && h.allowed[OpSubscribe] {
		if out, woken := h.serveRead(w, r, call.id, call.format); out != nil {
			h.writeRead(w, r, out, woken)
		}
		return nil
	}
	h.serveAPI(w, r, call)
	return nil
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
