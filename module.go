// Package comet is the Caddy glue of caddy-comet, which turns Caddy into an
// HTTP long-polling (comet) publish/subscribe hub, wire-compatible with
// Simple-Comet-Server.
//
// It owns the Caddy configuration and its life cycle: the comet app keeps
// hubs (package hub) across reloads, with the HTTP state of each
// (comethttp.HubState); the http.handlers.comet handler reads its route's
// Caddyfile and JSON, builds the token.Verifier of its jwt block, and
// hands its requests to a comethttp.Handler, which owns the API's
// protocol. It also holds the store modules, the metrics and the
// comet-token command. See README.md and docs/ for the API and the
// Caddyfile.
package comet

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Handler{})
}

// Operations a route can allow (comethttp's).
const (
	OpSubscribe = comethttp.OpSubscribe // reads, event streams and the client scripts
	OpPublish   = comethttp.OpPublish   // publishing messages
	OpManage    = comethttp.OpManage    // registering and deleting channels, registering clients
	OpStatus    = comethttp.OpStatus    // the status call
)

// DefaultSSEHeartbeat is sse_heartbeat's default (comethttp's).
const DefaultSSEHeartbeat = comethttp.DefaultSSEHeartbeat

// allOps is the list of the operations a route can allow.
var allOps = comethttp.Operations()

// App is the comet app: it owns the hubs that comet handlers publish to and
// read from. It needs no configuration; handlers create hubs through it.
//
// JSON: {"apps": {"comet": {}}}
type App struct {
	ctx    caddy.Context
	logger *zap.Logger
	// configHubs are the hubs this configuration's handlers use, by name;
	// the hubs themselves are in hubPool.
	configHubs map[string]*hubUse
	metrics    *metricsCollector
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
	a.configHubs = make(map[string]*hubUse)
	a.metrics = newMetricsCollector()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(a.metrics); err != nil {
			return fmt.Errorf("registering comet metrics: %w", err)
		}
	}
	return nil
}

// Start implements caddy.App. Hubs open when handlers ask for them, in
// Provision; their settings take effect now, when the configuration starts
// (see App.useHub).
func (a *App) Start() error {
	a.applyHubSettings()
	return nil
}

// Stop implements caddy.App. It gives each hub back its settings from
// before Start unless a newer configuration has applied its own, which
// matters when Caddy stops this configuration because another of its apps
// failed to start. Held reads are answered by the handlers when their
// server shuts down; hubs are closed in Cleanup once unused.
func (a *App) Stop() error {
	a.revertHubSettings()
	return nil
}

// Cleanup releases this configuration's hold on its hubs.
func (a *App) Cleanup() error {
	for name, use := range a.configHubs {
		if _, err := hubPool.Delete(use.poolKey); err != nil {
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
// enable_status, allow, allow_cross_site, sse_heartbeat) belong to the
// route.
//
// Caddyfile (the subdirectives are the JSON fields' names):
//
//	comet [<matcher>] {
//		hub                      <name>
//		quote_json
//		enable_status
//		allow                    <subscribe|publish|manage|status...>
//		allow_cross_site         <publish|manage|status...>
//		sse_heartbeat            <duration>
//		store                    memory | redis [<url>] [{ ... }]
//		jwt                      { ... }   (see JWT)
//
//		# HubSettings
//		http_timeout             <duration>
//		session_timeout          <duration>
//		inactive_channel_timeout <duration>
//		messages_per_channel     <n>
//		max_message_size         <size>
//		max_reply_size           <size>
//		max_channels_per_read    <n>
//		max_held_connections     <n>
//		max_held_per_ip          <n>
//		ipv6_prefix_per_ip       <bits>
//		max_channels             <n>
//		max_clients              <n>
//		max_retained_messages    <n>
//		idempotency_window       <duration>
//		max_idempotency_keys     <n>
//	}
//
// Durations are Caddy durations (30s, 1m) or bare integers in seconds, like
// the original server's switches; sizes take units (64KiB, 1MB). The store
// subdirective takes the store module's own syntax (see RedisStore and
// MemoryStore). Unknown subdirectives and bad values are errors that name
// the line.
//
// JSON:
//
//	{
//		"handler": "comet",
//		"hub": "default",
//		"quote_json": true,
//		"enable_status": true,
//		"allow": ["subscribe", "publish", "manage", "status"],
//		"allow_cross_site": ["publish"],
//		"store": {"store": "memory"},
//		"http_timeout": "30s",
//		"inactive_channel_timeout": 0,
//		"max_held_connections": 0,
//		...
//	}
type Handler struct {
	// Hub names the hub; handlers with the same name share channels,
	// messages and clients. Default: "default".
	Hub string `json:"hub,omitempty"`

	// HubSettings are the settings of the hub; their fields are the
	// handler's own in JSON. Default: none set, so the hub's defaults or
	// what another route of the hub sets.
	HubSettings

	// QuoteJSON wraps .json replies as /*-secure- {...} */. Default: off.
	QuoteJSON bool `json:"quote_json,omitempty"`

	// EnableStatus turns on the status call. Default: off.
	EnableStatus bool `json:"enable_status,omitempty"`

	// SSEHeartbeat is how long an event stream (GET /channels/IDS.sse)
	// stays silent before it gets a comment line, so that proxies and load
	// balancers do not close it as idle. It is a route setting, not a hub
	// setting: it answers to what stands between this route and its
	// clients. Default: 20s (DefaultSSEHeartbeat).
	SSEHeartbeat caddy.Duration `json:"sse_heartbeat,omitempty"`

	// Allow lists the operations this route serves: subscribe, publish,
	// manage, status. Others get 403. Default: all of them.
	Allow []string `json:"allow,omitempty"`

	// AllowCrossSite lists the operations, of publish, manage and status,
	// that this route serves to requests a browser sends on behalf of a
	// page of another site (Sec-Fetch-Site cross-site or same-site, or an
	// Origin that is not the site's); others get 403 (see
	// comethttp.Options.AllowCrossSite).
	// Subscribe and the health probe are served to every site whatever it
	// says. It is a route setting: it answers to who may reach the route.
	// Default: none, so publish, manage and status only from the site
	// itself and from clients that are not browsers.
	AllowCrossSite []string `json:"allow_cross_site,omitempty"`

	// StoreRaw is the hub's store module (namespace comet.stores).
	// Default: memory.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=comet.stores inline_key=store"`

	// JWT, when set, asks for a signed token before the operations it
	// requires (see JWT). Default: none, no token asked for.
	JWT *JWT `json:"jwt,omitempty"`

	pooled *pooledHub
	api    *comethttp.Handler // serves the API from hub
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.comet",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision gets the handler's hub from the comet app, builds the handler
// that serves the API from it, and arranges for held reads to be answered
// as soon as the server starts shutting down.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Hub == "" {
		h.Hub = "default"
	}
	if len(h.Allow) == 0 {
		h.Allow = allOps
	}
	if err := comethttp.CheckAllow(h.Allow); err != nil {
		return err
	}
	if err := comethttp.CheckAllowCrossSite(h.AllowCrossSite, h.Allow); err != nil {
		return err
	}
	if err := h.HubSettings.validate(); err != nil {
		return err
	}
	opts := comethttp.Options{
		QuoteJSON:      h.QuoteJSON,
		EnableStatus:   h.EnableStatus,
		Allow:          h.Allow,
		AllowCrossSite: h.AllowCrossSite,
		SSEHeartbeat:   time.Duration(h.SSEHeartbeat),
		ClientIP:       caddyClientIP,
		Logger:         h.logger,
	}
	if h.JWT != nil {
		if err := h.JWT.provision(h.logger, h.Allow); err != nil {
			return err
		}
		opts.Verifier, opts.Require = h.JWT.verifier, slices.Sorted(maps.Keys(h.JWT.required))
	}
	if h.SSEHeartbeat < 0 {
		return fmt.Errorf("sse_heartbeat must not be negative")
	}

	appIface, err := ctx.App("comet")
	if err != nil {
		return fmt.Errorf("getting comet app: %w", err)
	}
	h.pooled, err = appIface.(*App).useHub(h.Hub, h.HubSettings, h.StoreRaw, func() (StoreOpener, error) {
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
	if h.api, err = comethttp.New(h.pooled.http, opts); err != nil {
		return err
	}

	// Caddy's grace period is eternal by default and the hub outlives this
	// configuration, so held reads must be answered when this server begins
	// to shut down (stop or reload), not when they time out.
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(h.api.Stop)
		h.warnShortWriteTimeouts(srv)
	}
	return nil
}

// Cleanup answers held reads that are still there when the configuration is
// unloaded (servers that never started, for one), and stops the goroutines
// that verify this route's tokens.
func (h *Handler) Cleanup() error {
	if h.api != nil {
		h.api.Stop()
	}
	if h.JWT != nil {
		h.JWT.close()
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler: the API's requests are
// served by the route's comethttp.Handler, and the rest, OPTIONS requests
// included, go to the next handler. It adds one small frame to the read
// path, which keeps to the stack budget of a held read (docs/design.md).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.api.ServeAPI(w, r) {
		return nil
	}
	return h.passOn(w, r, next)
}

// passOn hands a request that is not the API's to the next handler, and
// says so at debug level: a route whose matcher does not strip its prefix
// (comet /comet/* { ... }) passes every request on, which is otherwise
// silent.
func (h *Handler) passOn(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if ce := h.logger.Check(zap.DebugLevel, "request passed on: not an API path"); ce != nil {
		ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path))
	}
	return next.ServeHTTP(w, r)
}

// caddyClientIP is the request's client address as Caddy determined it (so
// trusted_proxies apply), or its peer's address outside a Caddy server:
// the address max_held_per_ip counts by.
func caddyClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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
