package comet

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/simple-comet/caddy-comet/comethttp"
)

// handlerOn is a route's handler on a hub that is already running, with
// status enabled and every operation allowed. Its server is already
// stopping, so a read that would be held is answered at once.
func handlerOn(t testing.TB, ph *pooledHub) *Handler {
	t.Helper()
	api, err := comethttp.New(ph.http, comethttp.Options{EnableStatus: true, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	api.Stop()
	return &Handler{EnableStatus: true, pooled: ph, api: api, logger: zap.NewNop()}
}

var errNext = errors.New("next handler")

// serve runs r through the handler and reports whether it went to the next
// handler instead.
func serve(t testing.TB, h *Handler, r *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	err := h.ServeHTTP(rec, r, caddyhttpHandlerFunc(func(http.ResponseWriter, *http.Request) error { return errNext }))
	if errors.Is(err, errNext) {
		return rec, true
	}
	if err != nil {
		t.Fatalf("%s %s: ServeHTTP: %v", r.Method, r.URL, err)
	}
	return rec, false
}

type caddyhttpHandlerFunc func(http.ResponseWriter, *http.Request) error

func (f caddyhttpHandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// OPTIONS requests and paths outside the API go to the next handler; the
// API's requests do not.
func TestOptionsAndOtherPathsGoToNext(t *testing.T) {
	ph, err := newTestApp(t).useHub(t.Name(), HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h := handlerOn(t, ph)
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodOptions, "/channels/a.json", nil),
		httptest.NewRequest(http.MethodOptions, "/channels.json", nil),
		httptest.NewRequest(http.MethodGet, "/index.html", nil),
		httptest.NewRequest(http.MethodPost, "/statusx", nil),
	} {
		if _, next := serve(t, h, r); !next {
			t.Errorf("%s %s was answered, want it passed to the next handler", r.Method, r.URL)
		}
	}
	if rec, next := serve(t, h, httptest.NewRequest(http.MethodGet, "/health.json", nil)); next || rec.Code != http.StatusOK {
		t.Errorf("GET /health.json: next %v, %d %q; want it answered", next, rec.Code, rec.Body)
	}
}

func TestAllowCrossSiteConfig(t *testing.T) {
	site := func(lines ...string) string { return strings.Replace(siteWith(lines...), ":4080", ":0", 1) }
	if err := validateCaddyfile(t, site("allow_cross_site publish manage status")); err != nil {
		t.Fatal(err)
	}
	err := validateCaddyfile(t, site("allow subscribe publish", "allow_cross_site publish status"))
	if err == nil || !strings.Contains(err.Error(), "allow_cross_site: status is not allowed on this route") {
		t.Fatalf("got %v, want allow_cross_site refused for an operation the route does not allow", err)
	}
}

// A request the handler passes on is logged at debug level with its path,
// so that a route whose matcher keeps its prefix (comet /comet/* { ... },
// where the handler sees /comet/channels.json) shows why it serves nothing.
func TestPassedOnIsLogged(t *testing.T) {
	ph, err := newTestApp(t).useHub(t.Name(), HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h := handlerOn(t, ph)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	if _, next := serve(t, h, httptest.NewRequest(http.MethodGet, "/comet/channels.json?token=secret", nil)); !next {
		t.Fatal("a path with a prefix the handler does not strip was served")
	}
	if _, next := serve(t, h, httptest.NewRequest(http.MethodGet, "/health.json", nil)); next {
		t.Fatal("the health probe was passed on")
	}
	entries := logs.FilterMessage("request passed on: not an API path").All()
	if len(entries) != 1 || entries[0].ContextMap()["path"] != "/comet/channels.json" {
		t.Fatalf("logged %+v, want one entry with the path /comet/channels.json", entries)
	}
	if strings.Contains(fmt.Sprint(entries[0].ContextMap()), "secret") {
		t.Fatalf("the log line %+v holds the query", entries[0].ContextMap())
	}
}
