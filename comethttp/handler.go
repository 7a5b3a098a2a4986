package comethttp

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/token"
)

// Operations a handler can allow.
const (
	OpSubscribe = "subscribe" // reads, event streams and the client scripts
	OpPublish   = "publish"   // publishing messages
	OpManage    = "manage"    // registering and deleting channels, registering clients
	OpStatus    = "status"    // the status call
)

// Operations returns the operations a handler can allow, in the order the
// documentation lists them.
func Operations() []string { return []string{OpSubscribe, OpPublish, OpManage, OpStatus} }

// CheckAllow refuses operations that are not among Operations; New checks
// Options.Allow with it, and a configuration parser may call it to name
// the line.
func CheckAllow(ops []string) error {
	for _, op := range ops {
		if !slices.Contains(Operations(), op) {
			return fmt.Errorf("allow: unknown operation %q (want %s)", op, strings.Join(Operations(), ", "))
		}
	}
	return nil
}

// DefaultSSEHeartbeat is how long an event stream stays silent before it
// gets a comment line (sse_heartbeat): under the idle timeouts of the
// proxies and load balancers commonly in front (60s for nginx and AWS ALB,
// 100s for Cloudflare), with room to spare.
const DefaultSSEHeartbeat = 20 * time.Second

// Options are a Handler's route settings. The zero value serves every
// operation but the status call, asks for no token, and takes publish,
// manage and status only from the site itself.
type Options struct {
	// QuoteJSON wraps .json replies as /*-secure- {...} */. Default: off.
	QuoteJSON bool

	// EnableStatus turns on the status call. Default: off.
	EnableStatus bool

	// Allow lists the operations the handler serves (see Operations);
	// others get 403. The health probe is served whatever it lists.
	// Default: all of them.
	Allow []string

	// AllowCrossSite lists the operations, of publish, manage and status,
	// that the handler serves to requests a browser sends on behalf of a
	// page of another site; others get 403 (see crossSite). Each must be
	// in Allow. Default: none.
	AllowCrossSite []string

	// SSEHeartbeat is how long an event stream stays silent before it gets
	// a comment line. Default: DefaultSSEHeartbeat.
	SSEHeartbeat time.Duration

	// Verifier, when set, checks the tokens of the operations in Require
	// (docs/design.md, "Verifying tokens off the request's stack"). The
	// handler does not close it. Default: nil, no token asked for.
	Verifier *token.Verifier

	// Require lists the operations that need a token, each in Allow; only
	// with Verifier. Default: every operation in Allow.
	Require []string

	// ClientIP returns the address a request's held reads count under for
	// max_held_per_ip. Default: the host of the request's RemoteAddr.
	ClientIP func(*http.Request) string

	// Logger takes the handler's debug lines, one per refusal and error;
	// none holds a token. Default: zap.NewNop().
	Logger *zap.Logger
}

// Handler serves the comet API from a hub: http.Handler for a Go program
// that mounts it on a server of its own (paths outside the API, and
// OPTIONS requests, get 404; mount it under a prefix with
// http.StripPrefix), and ServeAPI for a server that hands those to a
// handler of its own, as the Caddy module does.
type Handler struct {
	state        *HubState
	hub          *hub.Hub
	quoteJSON    bool
	enableStatus bool
	allowed      map[string]bool
	crossSiteOK  map[string]bool // AllowCrossSite
	heartbeat    time.Duration   // SSEHeartbeat, or its default
	verifier     *token.Verifier
	required     map[string]bool // Require, or Allow
	clientIP     func(*http.Request) string
	logger       *zap.Logger
	// stopCtx ends when the handler stops: held reads wait on its Done,
	// and each event stream's context ends with it (see streamCall.ctx).
	stopCtx context.Context
	stop    context.CancelFunc
}

// New returns a handler of the hub of state with the settings of opts,
// or an error that names the setting that is wrong.
func New(state *HubState, opts Options) (*Handler, error) {
	allow := opts.Allow
	if len(allow) == 0 {
		allow = Operations()
	}
	if err := CheckAllow(allow); err != nil {
		return nil, err
	}
	if err := CheckAllowCrossSite(opts.AllowCrossSite, allow); err != nil {
		return nil, err
	}
	if opts.SSEHeartbeat < 0 {
		return nil, fmt.Errorf("sse_heartbeat must not be negative")
	}
	h := &Handler{
		state:        state,
		hub:          state.hub,
		quoteJSON:    opts.QuoteJSON,
		enableStatus: opts.EnableStatus,
		allowed:      make(map[string]bool, len(allow)),
		crossSiteOK:  make(map[string]bool, len(opts.AllowCrossSite)),
		heartbeat:    cmp.Or(opts.SSEHeartbeat, DefaultSSEHeartbeat),
		verifier:     opts.Verifier,
		clientIP:     opts.ClientIP,
		logger:       cmp.Or(opts.Logger, zap.NewNop()),
	}
	h.stopCtx, h.stop = context.WithCancel(context.Background())
	if h.clientIP == nil {
		h.clientIP = remoteHost
	}
	for _, op := range allow {
		h.allowed[op] = true
	}
	for _, op := range opts.AllowCrossSite {
		h.crossSiteOK[op] = true
	}
	if opts.Verifier != nil {
		require := opts.Require
		if len(require) == 0 {
			require = allow
		}
		h.required = make(map[string]bool, len(require))
		for _, op := range require {
			if !h.allowed[op] {
				return nil, fmt.Errorf("require: %s is not allowed (allow %s)", op, strings.Join(allow, " "))
			}
			h.required[op] = true
		}
	}
	return h, nil
}

// Stop answers the handler's held reads and ends its event streams, at
// once and from then on: call it when the server begins to shut down
// (http.Server.RegisterOnShutdown), since a held read would otherwise keep
// the shutdown waiting until it times out. It may be called more than
// once.
func (h *Handler) Stop() { h.stop() }

// ServeHTTP serves the API; other paths, and OPTIONS requests, get 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.ServeAPI(w, r) {
		http.NotFound(w, r)
	}
}

// ServeAPI serves r and returns true when it is an API request, and
// returns false, having written nothing, for OPTIONS requests and paths
// outside the API, which the caller answers.
//
// A held read parks its goroutine under this frame (docs/design.md, "The
// stack budget of a held read"), so the path is routed here once, and
// reads and streams, the requests that are held, take the shortest way:
// their replies are written from this frame (see serveRead).
func (h *Handler) ServeAPI(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodOptions {
		return false
	}
	var call apiCall
	if !route(r.URL.Path, r.Method, &call) {
		return false
	}
	until, ok := h.authorize(w, r, &call)
	if !ok {
		return true // refused: no token, or one that does not cover the call
	}
	// The reads left to serveAPI are those it refuses: in an unknown
	// format, or on a handler that does not allow subscribe.
	if call.resource == resChannel && call.op == OpSubscribe && call.formatOK && h.allowed[OpSubscribe] {
		if rd := h.serveRead(w, r, &call, until); rd != nil {
			h.writeRead(w, r, rd)
		}
		return true
	}
	if call.resource == resStream && call.op == OpSubscribe && h.allowed[OpSubscribe] {
		h.serveStream(w, r, &call, until)
		return true
	}
	h.serveAPI(w, r, &call)
	return true
}

// remoteHost is the host of the request's peer address: the client's
// address when nothing stands between, a proxy's otherwise.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var _ http.Handler = (*Handler)(nil)
