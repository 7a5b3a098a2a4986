// Package leasthub is the least hub Caddy allows: a Caddy HTTP handler that
// speaks as much of caddy-comet's API as a fan-out load uses (docs/api.md)
// and does the least a hub can do. It keeps, per channel, the held reads
// waiting for its next publish and the open streams; a publish answers
// the held reads with one encoding of the message in comet's read reply
// shape, and queues the same reply as an event for each stream, which its
// own goroutine writes and flushes. Nothing is retained, there is no
// cursor (since and Last-Event-ID are not read: what is published while a
// reader is between two reads is not its), and there are no limits.
//
// It is a benchmark's floor, not a hub to deploy: the cost of a delivery
// through Caddy with nothing of the hub's own on top
// (docs/performance.md, "Side by side: method"). One hub serves every least_hub
// handler of the process, so that a publish route and a read route meet.
package leasthub

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("least_hub", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("least_hub", httpcaddyfile.Before, "respond")
}

// shared is the one hub of the process.
var shared = newHub()

// defaultHTTPTimeout is comet's default http_timeout.
const defaultHTTPTimeout = 30 * time.Second

// Handler serves the least hub: POST /channels.json (registering: accepted
// and forgotten), POST /channels/ID.json (publishing, content from the
// form), GET /channels/IDS.json or .jsonp (a held read; ids joined by '|'),
// GET /channels/IDS.sse (an event stream) and GET /status.json (the held
// reads and streams). Other requests go to the next handler.
type Handler struct {
	// HTTPTimeout is how long a read is held before it is answered with no
	// messages. Default: 30s, comet's default.
	HTTPTimeout caddy.Duration `json:"http_timeout,omitempty"`

	hub *hub
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.least_hub",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the defaults and joins the process's hub.
func (h *Handler) Provision(caddy.Context) error {
	if h.HTTPTimeout <= 0 {
		h.HTTPTimeout = caddy.Duration(defaultHTTPTimeout)
	}
	h.hub = shared
	return nil
}

// ServeHTTP routes a request of the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	path := r.URL.Path
	if path == "/status.json" && r.Method == http.MethodGet {
		return h.status(w)
	}
	if path == "/channels.json" && r.Method == http.MethodPost {
		return writeJSON(w, wire.Options{}, `{"channel_id":`+string(appendJSONString(nil, r.FormValue("channel_id")))+`,"return_code":1,"error_message":""}`)
	}
	rest, ok := strings.CutPrefix(path, "/channels/")
	if !ok || rest == "" {
		return next.ServeHTTP(w, r)
	}
	if ids, ok := strings.CutSuffix(rest, ".sse"); ok && r.Method == http.MethodGet {
		return h.stream(w, r, strings.Split(ids, "|"))
	}
	ids, format, ok := wire.SplitFormat(rest)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	opts := wire.Options{Format: format, Callback: r.URL.Query().Get("cb")}
	if opts.CallbackRefused() {
		w.WriteHeader(http.StatusBadRequest)
		_, err := w.Write([]byte(wire.InvalidCallbackBody))
		return err
	}
	switch r.Method {
	case http.MethodPost:
		id := h.hub.publish(ids, r.FormValue("content"))
		return writeJSON(w, opts, `{"message_id":`+strconv.FormatInt(id, 10)+`,"return_code":1,"error_message":""}`)
	case http.MethodGet:
		return h.read(w, r, opts, strings.Split(ids, "|"))
	}
	return next.ServeHTTP(w, r)
}

// read holds a read until a publish on one of its channels, the timeout or
// the client's departure.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, opts wire.Options, names []string) error {
	wt := h.hub.wait(names)
	timer := time.NewTimer(time.Duration(h.HTTPTimeout))
	defer timer.Stop()
	select {
	case reply := <-wt.reply:
		return wire.Write(w, http.StatusOK, opts, reply, true)
	case <-timer.C:
	case <-r.Context().Done():
	}
	if !h.hub.giveUp(wt) {
		// A publish took the read as it timed out: its reply is on the
		// way, and it is the read's.
		return wire.Write(w, http.StatusOK, opts, <-wt.reply, true)
	}
	if r.Context().Err() != nil {
		return nil
	}
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	return writeJSON(w, opts, `{"since":`+strconv.FormatInt(since, 10)+`,"messages":{},"last_id":`+strconv.FormatInt(since, 10)+`,"return_code":1,"error_message":""}`)
}

// stream writes every publish on its channels as an event, from the
// request's own goroutine, flushing each, until the client goes away.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, names []string) error {
	s := h.hub.open(names)
	defer h.hub.close(s, names)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.wake:
		}
		for _, ev := range s.take() {
			if _, err := w.Write(ev); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// status answers /status.json with the held reads and open streams, in
// comet's shape, so that comet-bench -status sees them held.
func (h *Handler) status(w http.ResponseWriter) error {
	return writeJSON(w, wire.Options{}, `{"status":{"held_connections_count":`+strconv.FormatInt(h.hub.held.Load(), 10)+`},"return_code":1,"error_message":""}`)
}

func writeJSON(w http.ResponseWriter, opts wire.Options, body string) error {
	return wire.Write(w, http.StatusOK, opts, []byte(body), false)
}

// parseCaddyfile sets up the handler from Caddyfile tokens:
//
//	least_hub {
//		http_timeout <duration>
//	}
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var lh Handler
	return &lh, lh.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile reads the least_hub directive.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "http_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			t, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("http_timeout %q: %v", d.Val(), err)
			}
			h.HTTPTimeout = caddy.Duration(t)
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown least_hub option %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
