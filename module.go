// Package comet is a Caddy module that turns Caddy into an HTTP long-polling
// (comet) publish/subscribe hub, wire-compatible with Simple-Comet-Server.
//
// The comet app owns hubs (package hub); the http.handlers.comet handler maps
// the HTTP API onto a hub, and owns the configuration of its jwt block and
// the token.Verifier it builds (package token checks the tokens). See
// README.md and docs/ for the API and the Caddyfile.
package comet

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
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

// allOps is the one list of the operations a route can allow.
var allOps = []string{OpSubscribe, OpPublish, OpManage, OpStatus}

// checkOps refuses operations that are not in allOps, for Provision and for
// the Caddyfile parser (which names the line).
func checkOps(ops []string) error {
	for _, op := range ops {
		if !slices.Contains(allOps, op) {
			return fmt.Errorf("allow: unknown operation %q (want %s)", op, strings.Join(allOps, ", "))
		}
	}
	return nil
}

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
// (see App.hub).
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
	// Origin that is not the site's); others get 403 (see crossSite).
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

	hub         *pooledHub
	allowed     map[string]bool
	crossSiteOK map[string]bool // AllowCrossSite
	heartbeat   time.Duration   // SSEHeartbeat, or its default
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
	if err := checkOps(h.Allow); err != nil {
		return err
	}
	for _, op := range h.Allow {
		h.allowed[op] = true
	}
	if err := checkAllowCrossSite(h.AllowCrossSite, h.Allow); err != nil {
		return err
	}
	h.crossSiteOK = make(map[string]bool, len(h.AllowCrossSite))
	for _, op := range h.AllowCrossSite {
		h.crossSiteOK[op] = true
	}
	if err := h.HubSettings.validate(); err != nil {
		return err
	}
	if h.JWT != nil {
		if err := h.JWT.provision(h.logger, h.Allow); err != nil {
			return err
		}
	}
	if h.SSEHeartbeat < 0 {
		return fmt.Errorf("sse_heartbeat must not be negative")
	}
	h.heartbeat = cmp.Or(time.Duration(h.SSEHeartbeat), DefaultSSEHeartbeat)

	appIface, err := ctx.App("comet")
	if err != nil {
		return fmt.Errorf("getting comet app: %w", err)
	}
	h.hub, err = appIface.(*App).hub(h.Hub, h.HubSettings, h.StoreRaw, func() (StoreOpener, error) {
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
// unloaded (servers that never started, for one), and stops the goroutines
// that verify this route's tokens.
func (h *Handler) Cleanup() error {
	if h.releaseHeld != nil {
		h.releaseHeld()
	}
	if h.JWT != nil {
		h.JWT.close()
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodOptions {
		return next.ServeHTTP(w, r)
	}
	call, ok := route(r.URL.Path, r.Method)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	until, ok := h.authorize(w, r, call)
	if !ok {
		return nil // refused: no token, or one that does not cover the call
	}
	// Reads, the requests that are held, take the shortest way, and their
	// replies are written from this frame (see serveRead). The reads left
	// to serveAPI are those it refuses: in an unknown format, or on a
	// route that does not allow subscribe.
	if call.resource == resChannel && call.op == OpSubscribe && call.formatOK && h.allowed[OpSubscribe] {
		if out, woken := h.serveRead(w, r, call.id, call.format, until); out != nil {
			h.writeRead(w, r, out, woken)
		}
		return nil
	}
	if call.resource == resStream && call.op == OpSubscribe && h.allowed[OpSubscribe] {
		h.serveStream(w, r, call.id, until)
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
