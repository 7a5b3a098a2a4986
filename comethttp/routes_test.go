package comethttp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
)

func TestRouteOf(t *testing.T) {
	tests := []struct {
		path     string
		ok       bool
		resource resource
		id       string
		format   wire.Format
		formatOK bool
	}{
		{"/channels.json", true, resChannels, "", wire.JSON, true},
		{"/channels.jsonp", true, resChannels, "", wire.JSONP, true},
		{"/clients.json", true, resClients, "", wire.JSON, true},
		{"/clients.jsonp", true, resClients, "", wire.JSONP, true},
		{"/status.json", true, resStatus, "", wire.JSON, true},
		{"/status.jsonp", true, resStatus, "", wire.JSONP, true},
		{"/health.json", true, resHealth, "", wire.JSON, true},
		{"/health.jsonp", true, resHealth, "", wire.JSONP, true},
		{"/channels/news.json", true, resChannel, "news", wire.JSON, true},
		{"/channels/news.jsonp", true, resChannel, "news", wire.JSONP, true},
		{"/channels/a|b.json", true, resChannel, "a|b", wire.JSON, true},
		{"/channels/a.b.c.jsonp", true, resChannel, "a.b.c", wire.JSONP, true},
		{"/channels/a/b.json", true, resChannel, "a/b", wire.JSON, true},
		{"/channels/日本.json", true, resChannel, "日本", wire.JSON, true},
		{"/channels/.json", true, resChannel, "", wire.JSON, true},
		{"/channels/news.sse", true, resStream, "news", wire.JSON, true},
		{"/channels/a|b.sse", true, resStream, "a|b", wire.JSON, true},
		{"/channels/a.sse.json", true, resChannel, "a.sse", wire.JSON, true},
		{"/simple-comet.js", true, resScript, "simple-comet.js", wire.JSON, true},
		{"/simple-comet.min.js", true, resScript, "simple-comet.min.js", wire.JSON, true},
		{"/simple-comet-jsonp.min.js", true, resScript, "simple-comet-jsonp.min.js", wire.JSON, true},
		{"/simple-comet-shared.min.js", true, resScript, "simple-comet-shared.min.js", wire.JSON, true},

		// Part of the API, in a format it does not speak: answered with
		// "Unknown output format" rather than passed on.
		{"/channels.xml", true, resChannels, "", wire.JSON, false},
		{"/channels", true, resChannels, "", wire.JSON, false},
		{"/clients.html", true, resClients, "", wire.JSON, false},
		{"/status", true, resStatus, "", wire.JSON, false},
		{"/status.JSON", true, resStatus, "", wire.JSON, false},
		{"/health", true, resHealth, "", wire.JSON, false},
		{"/health.txt", true, resHealth, "", wire.JSON, false},
		{"/channels/news", true, resChannel, "news", wire.JSON, false},
		{"/channels/news.xml", true, resChannel, "news.xml", wire.JSON, false},
		{"/channels/", true, resChannel, "", wire.JSON, false},
		{"/channels.json.json", true, resChannels, "", wire.JSON, false},
		{"/status.jsonp.json", true, resStatus, "", wire.JSON, false},
		{"/clients.json.jsonp", true, resClients, "", wire.JSON, false},

		// Not the API: the next handler answers.
		{"/statusx", false, 0, "", 0, false},
		{"/statusx.json", false, 0, "", 0, false},
		{"/healthz", false, 0, "", 0, false},
		{"/health/x.json", false, 0, "", 0, false},
		{"/status/x.json", false, 0, "", 0, false},
		{"/channel.json", false, 0, "", 0, false},
		{"/Channels.json", false, 0, "", 0, false},
		{"//channels.json", false, 0, "", 0, false},
		{"/api/channels.json", false, 0, "", 0, false},
		{"/simple-comet.jsonp", false, 0, "", 0, false},
		{"/simple-comet.css", false, 0, "", 0, false},
		{"/simple-comet.js/x", false, 0, "", 0, false},
		{"/", false, 0, "", 0, false},
		{"", false, 0, "", 0, false},
		{"/index.html", false, 0, "", 0, false},
		{"/.json", false, 0, "", 0, false},
		{"status.json", false, 0, "", 0, false},
		{"status", false, 0, "", 0, false},
		{"*", false, 0, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			call, ok := routeOf(tt.path)
			if ok != tt.ok {
				t.Fatalf("routeOf(%q) ok = %v, want %v", tt.path, ok, tt.ok)
			}
			want := apiCall{resource: tt.resource, id: tt.id, format: tt.format, formatOK: tt.formatOK}
			if ok && call != want {
				t.Errorf("routeOf(%q) = %+v, want %+v", tt.path, call, want)
			}
		})
	}
}

// routeOf sees the decoded path, as Caddy hands it to handlers: an escaped
// '|' separates channels, an escaped '/' is part of an id.
func TestRouteOfDecodedPath(t *testing.T) {
	tests := []struct{ target, id string }{
		{"/channels/a%7Cb.json", "a|b"},
		{"/channels/a%7cb%7Cc.jsonp", "a|b|c"},
		{"/channels/a%2Fb.json", "a/b"},
		{"/channels/%E6%97%A5.json", "日"},
		{"/channels/a%2Ejson", "a"},
	}
	for _, tt := range tests {
		u, err := url.Parse("http://example.com" + tt.target)
		if err != nil {
			t.Fatal(err)
		}
		call, ok := routeOf(u.Path)
		if !ok || call.resource != resChannel || !call.formatOK || call.id != tt.id {
			t.Errorf("%s (path %q): routeOf = %+v, %v; want channel %q", tt.target, u.Path, call, ok, tt.id)
		}
	}
}

func TestOperation(t *testing.T) {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions, "PROPFIND"}
	tests := []struct {
		resource resource
		ops      map[string]string // method -> operation; others get 405
		allow    string
	}{
		{resChannels, map[string]string{"POST": OpManage}, "POST"},
		{resChannel, map[string]string{"GET": OpSubscribe, "POST": OpPublish, "DELETE": OpManage}, "GET, POST, DELETE"},
		{resClients, map[string]string{"POST": OpManage}, "POST"},
		{resStatus, map[string]string{"GET": OpStatus}, "GET"},
		{resScript, map[string]string{"GET": OpSubscribe, "HEAD": OpSubscribe}, "GET, HEAD"},
		{resHealth, map[string]string{"GET": opHealth, "HEAD": opHealth}, "GET, HEAD"},
		{resStream, map[string]string{"GET": OpSubscribe}, "GET"},
	}
	for _, tt := range tests {
		for _, m := range methods {
			op, allow := operation(tt.resource, m)
			if want := tt.ops[m]; op != want {
				t.Errorf("operation(%v, %s) op = %q, want %q", tt.resource, m, op, want)
			}
			switch {
			case op != "" && allow != "":
				t.Errorf("operation(%v, %s) = %q with Allow %q; Allow is only for refusals", tt.resource, m, op, allow)
			case op == "" && allow != tt.allow:
				t.Errorf("operation(%v, %s) Allow = %q, want %q", tt.resource, m, allow, tt.allow)
			}
		}
		// The Allow header lists exactly the methods that have an
		// operation.
		for m := range strings.SplitSeq(tt.allow, ", ") {
			if op, _ := operation(tt.resource, m); op == "" {
				t.Errorf("resource %v: Allow lists %s, which it refuses", tt.resource, m)
			}
		}
		for m := range tt.ops {
			if !slices.Contains(strings.Split(tt.allow, ", "), m) {
				t.Errorf("resource %v: Allow %q leaves out %s", tt.resource, tt.allow, m)
			}
		}
	}
}

// testHandler is a handler on a fresh memory hub, with status enabled and
// every operation allowed. It is already stopped, so a read that would be
// held is answered at once.
func testHandler(t testing.TB, cfg hub.Config) *Handler {
	t.Helper()
	h, err := hub.New("test", cfg, func(o hub.StoreOptions) (hub.Store, error) { return hub.NewMemoryStore(o), nil })
	if err != nil {
		t.Fatal(err)
	}
	state := NewHubState(h)
	t.Cleanup(func() {
		state.Close()
		h.Close()
	})
	return handlerOn(t, state, Options{EnableStatus: true})
}

// handlerOn is a stopped handler with opts on a hub that is already
// running.
func handlerOn(t testing.TB, state *HubState, opts Options) *Handler {
	t.Helper()
	handler, err := New(state, opts)
	if err != nil {
		t.Fatal(err)
	}
	handler.Stop()
	return handler
}

// serve runs r through the handler's ServeAPI and reports whether it
// passed it on (ServeAPI returned false) instead of answering it.
func serve(t testing.TB, h *Handler, r *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	if !h.ServeAPI(rec, r) {
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Fatalf("%s %s: passed on, but wrote %d %q", r.Method, r.URL, rec.Code, rec.Body)
		}
		return rec, true
	}
	return rec, false
}

// A method a resource refuses gets 405 with the Allow header, in the reply
// format the path asks for.
func TestMethodNotAllowedReply(t *testing.T) {
	h := testHandler(t, hub.Config{})
	tests := []struct {
		method, target, allow string
	}{
		{http.MethodGet, "/channels.json", "POST"},
		{http.MethodPut, "/channels/a.json", "GET, POST, DELETE"},
		{http.MethodGet, "/clients.jsonp", "POST"},
		{http.MethodPost, "/status.json", "GET"},
		{http.MethodPost, "/simple-comet.js", "GET, HEAD"},
		{http.MethodPost, "/health.json", "GET, HEAD"},
		{http.MethodDelete, "/health.jsonp", "GET, HEAD"},
	}
	for _, tt := range tests {
		rec, next := serve(t, h, httptest.NewRequest(tt.method, tt.target, nil))
		if next {
			t.Fatalf("%s %s went to the next handler", tt.method, tt.target)
		}
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", tt.method, tt.target, rec.Code, rec.Header().Get("Allow"), tt.allow)
		}
		if rc := replyCode(t, rec); rc != hub.CodeBadRequest {
			t.Errorf("%s %s: return_code %d, want -1", tt.method, tt.target, rc)
		}
	}
}

// The health probe answers on every route, whatever it allows, and says
// nothing but that the store answers.
func TestHealth(t *testing.T) {
	h := testHandler(t, hub.Config{})
	for _, allow := range [][]string{Operations(), {OpSubscribe}, {OpPublish}, {OpManage}} {
		h.allowed = make(map[string]bool)
		for _, op := range allow {
			h.allowed[op] = true
		}
		rec, next := serve(t, h, httptest.NewRequest(http.MethodGet, "/health.json", nil))
		if next || rec.Code != http.StatusOK || rec.Body.String() != `{"status":"ok","return_code":1,"error_message":""}` {
			t.Fatalf("allow %v: GET /health.json: next %v, %d %q", allow, next, rec.Code, rec.Body)
		}
		for header, want := range map[string]string{
			"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		} {
			if got := rec.Header().Get(header); got != want {
				t.Errorf("allow %v: %s %q, want %q", allow, header, got, want)
			}
		}
	}
	rec, _ := serve(t, h, httptest.NewRequest(http.MethodGet, "/health.jsonp?cb=_JSONP_h", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != `_JSONP_h({"status":"ok","return_code":1,"error_message":""});` {
		t.Fatalf("GET /health.jsonp: %d %q", rec.Code, rec.Body)
	}
	rec, _ = serve(t, h, httptest.NewRequest(http.MethodGet, "/health.xml", nil))
	if rec.Code != http.StatusOK || replyCode(t, rec) != hub.CodeBadRequest {
		t.Fatalf("GET /health.xml: %d %q, want -1 Unknown output format", rec.Code, rec.Body)
	}
}

func TestOptionsAndOtherPathsGoToNext(t *testing.T) {
	h := testHandler(t, hub.Config{})
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
}

// replyCode decodes an API reply (JSON or JSON-P) and returns its
// return_code, failing unless the reply is well formed.
func replyCode(t testing.TB, rec *httptest.ResponseRecorder) int {
	t.Helper()
	body := rec.Body.Bytes()
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/javascript") {
		if string(body) == wire.InvalidCallbackBody {
			return 0
		}
		open := bytes.IndexByte(body, '(')
		if open < 0 || !bytes.HasSuffix(body, []byte(");")) || !wire.ValidCallback(string(body[:open])) {
			t.Fatalf("JSON-P reply %q is not CALLBACK(...);", body)
		}
		body = body[open+1 : len(body)-2]
	} else if quoted, ok := bytes.CutPrefix(body, []byte("/*-secure- ")); ok {
		if !bytes.HasSuffix(quoted, []byte(" */")) || bytes.Index(body, []byte("*/")) != len(body)-2 {
			t.Fatalf("quoted reply %q is not one comment, /*-secure- ... */", body)
		}
		body = quoted[:len(quoted)-3]
	}
	for _, raw := range []string{"<", ">", "&", "\u2028", "\u2029"} {
		if bytes.Contains(body, []byte(raw)) {
			t.Fatalf("reply %q contains raw %q", body, raw)
		}
	}
	var reply struct {
		ReturnCode   *int    `json:"return_code"`
		ErrorMessage *string `json:"error_message"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatalf("reply %q is not JSON: %v", body, err)
	}
	if reply.ReturnCode == nil || reply.ErrorMessage == nil {
		t.Fatalf("reply %q lacks return_code or error_message", body)
	}
	if (*reply.ReturnCode < 0) != (*reply.ErrorMessage != "") {
		t.Fatalf("reply %q: return_code and error_message disagree", body)
	}
	return *reply.ReturnCode
}

func FuzzRouteOf(f *testing.F) {
	for _, s := range []string{
		"/channels.json", "/channels.jsonp", "/channels.xml", "/channels", "/channels/a|b.json",
		"/channels/a.jsonp", "/channels/", "/clients.json", "/status.json", "/statusx",
		"/simple-comet.js", "/simple-comet.min.js", "/", "", "/.json", "//channels.json",
		"/channels.json.json", "/status.jsonp.jsonp", "/health.json", "/health",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		call, ok := routeOf(path)
		suffix := map[wire.Format]string{wire.JSON: ".json", wire.JSONP: ".jsonp"}[call.format]
		if !ok {
			// Nothing the API answers may go to the next handler.
			if strings.HasPrefix(path, "/channels/") || path == "/simple-comet.js" || path == "/simple-comet.min.js" || path == "/simple-comet-jsonp.min.js" || path == "/simple-comet-shared.min.js" {
				t.Fatalf("routeOf(%q) passes an API path on", path)
			}
			for _, name := range []string{"channels", "clients", "status", "health"} {
				if path == "/"+name || strings.HasPrefix(path, "/"+name+".") {
					t.Fatalf("routeOf(%q) passes an API path on", path)
				}
			}
			return
		}
		switch call.resource {
		case resScript:
			if path != "/"+call.id || !call.formatOK {
				t.Fatalf("routeOf(%q) = %+v", path, call)
			}
		case resChannel:
			if call.formatOK && path != "/channels/"+call.id+suffix {
				t.Fatalf("routeOf(%q) = %+v does not rebuild the path", path, call)
			}
			if !call.formatOK && path != "/channels/"+call.id {
				t.Fatalf("routeOf(%q) = %+v does not rebuild the path", path, call)
			}
		case resChannels, resClients, resStatus, resHealth:
			name := map[resource]string{resChannels: "channels", resClients: "clients", resStatus: "status", resHealth: "health"}[call.resource]
			if call.formatOK && path != "/"+name+suffix {
				t.Fatalf("routeOf(%q) = %+v does not rebuild the path", path, call)
			}
			if !call.formatOK && path != "/"+name && !strings.HasPrefix(path, "/"+name+".") {
				t.Fatalf("routeOf(%q) = %+v", path, call)
			}
		default:
			t.Fatalf("routeOf(%q) = %+v: no resource", path, call)
		}
	})
}

var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodPut, http.MethodOptions}

// FuzzRequest sends arbitrary requests, as they arrive on the wire, through
// the handler to a hub that has a few channels, a session channel, a client
// and messages, some of them hostile. Whatever the request, the handler answers without panicking,
// with an API status and a well-formed reply (or passes it on), and a read's
// channel list parses into a result or an API error.
func FuzzRequest(f *testing.F) {
	seeds := []struct {
		method uint8
		target string
		body   string
	}{
		{0, "/channels/a.json?since=0", ""},
		{0, "/channels/b%7C%3C%26%3E.jsonp?cb=_JSONP_x", ""},
		{0, "/channels/a%7Cb%7Cprivate.jsonp?since=0&client_id=c1&cb=_JSONP_x", ""},
		{0, "/channels/private.json?client_id=c1", ""},
		{0, "/channels/private.json?client_id=", ""},
		{0, "/channels/nope%7C%7C.json?since=abc", ""},
		{0, "/channels/a%7Cb%7Cc%7Cd%7Ce.json", ""},
		{0, "/channels/a.jsonp?cb=alert(1)//", ""},
		{0, "/channels/%FF.json", ""},
		{0, "/channels/a.json?since=99999999999999999999", ""},
		{0, "/status.jsonp?cb=_JSONP_s", ""},
		{0, "/simple-comet.min.js", ""},
		{1, "/channels.json", "channel_id=n&use_sessions=yes&max_messages=2"},
		{1, "/channels.json?channel_id=q", "max_messages=0"},
		{1, "/channels/a.json", "content=%3C%2Fscript%3E%E2%80%A8"},
		{1, "/channels/a.json", "content=" + strings.Repeat("x", 300)},
		{1, "/channels/a.json", "content=%ZZ"},
		{1, "/clients.json", "client_id=c2"},
		{2, "/channels/a.json", ""},
		{3, "/simple-comet.js", ""},
		{4, "/channels/a.json", ""},
		{5, "/channels.json", ""},
		{0, "/channels.xml", ""},
		{0, "/index.html", ""},
		{0x80, "/channels/%2A%2Fx%2F%2A%7Ca.json?since=0", ""},
		{0x80, "/status.json", ""},
		{0x81, "/channels.json", "channel_id=%2A%2F"},
		{0, "/channels.json.json", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.body)
	}
	f.Fuzz(func(t *testing.T, methodIndex uint8, target, body string) {
		method := fuzzMethods[int(methodIndex)%len(fuzzMethods)]
		raw := method + " " + target + " HTTP/1.1\r\nHost: comet.test\r\n" +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http refuses it before any handler runs
		}

		h := testHandler(t, hub.Config{MaxChannelsPerRead: 4, MaxMessageSize: 256, MessagesPerChannel: 3})
		// The method's top bit turns quote_json on, whose comment no reply
		// may end early.
		h.quoteJSON = methodIndex&0x80 != 0
		ctx := context.Background()
		for _, ch := range []string{"a", "b", "*/x/*"} {
			if err := h.hub.RegisterChannel(ctx, ch, false, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.hub.RegisterChannel(ctx, "private", true, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.hub.RegisterClient(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := h.hub.RegisterChannel(ctx, "<&>", false, 0); err != nil {
			t.Fatal(err)
		}
		for _, m := range []struct{ channel, content string }{
			{"a", "hello"},
			{"b", "</script>\u2028\u2029&\"\\"},
			{"<&>", "<!--"},
			{"*/x/*", "*/ window.pwned = 1; /*"},
		} {
			if _, err := h.hub.Publish(ctx, m.channel, m.content); err != nil {
				t.Fatal(err)
			}
		}

		call, isAPI := routeOf(r.URL.Path)
		if isAPI && call.resource == resChannel && call.formatOK && method == http.MethodGet {
			checkRead(t, h.hub, r.URL.Query(), call.id)
		}

		rec, next := serve(t, h, r)
		if next {
			if isAPI && method != http.MethodOptions {
				t.Fatalf("%s %q: API request passed to the next handler", method, target)
			}
			return
		}
		if !isAPI || method == http.MethodOptions {
			t.Fatalf("%s %q: answered a request outside the API", method, target)
		}
		switch rec.Code {
		case http.StatusBadRequest:
			// Only a refused JSON-P callback name, answered as the original.
			if rec.Body.String() != wire.InvalidCallbackBody {
				t.Fatalf("%s %q: status 400 with %q", method, target, rec.Body)
			}
			return
		case http.StatusOK, http.StatusForbidden, http.StatusMethodNotAllowed,
			http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable:
		case http.StatusNotModified, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
			if call.resource != resScript {
				t.Fatalf("%s %q: status %d", method, target, rec.Code)
			}
		default:
			t.Fatalf("%s %q: status %d", method, target, rec.Code)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Fatalf("%s %q: X-Content-Type-Options = %q, want nosniff", method, target, got)
		}
		if call.resource == resScript && rec.Code != http.StatusMethodNotAllowed {
			return // JavaScript, not an API reply
		}
		replyCode(t, rec)
	})
}

// checkRead parses a read's channel list and query as the handler does and
// reads from the hub directly: the answer is a result or an API error, never
// a panic or any other error.
func checkRead(t *testing.T, h *hub.Hub, query url.Values, channels string) {
	t.Helper()
	req := hub.ReadRequest{Channels: channels}
	if ids, ok := query["client_id"]; ok {
		req.HasClientID, req.ClientID = true, ids[0]
	}
	req.Since, _ = strconv.ParseInt(query.Get("since"), 10, 64)
	stop := make(chan struct{})
	close(stop) // answer at once rather than hold
	reply, err := h.Read(context.Background(), req, stop)
	if err != nil {
		var apiErr *hub.Error
		if !errors.As(err, &apiErr) || apiErr.Code >= 0 {
			t.Fatalf("read %q: error %v (%T), want an API error", channels, err, err)
		}
		return
	}
	for _, c := range reply.Channels {
		if err := hub.ValidateChannelID(c.ID); err != nil {
			t.Fatalf("read %q: reply has channel %q: %v", channels, c.ID, err)
		}
		for _, m := range c.Messages {
			if m.ID <= reply.Since || m.ID > reply.LastID {
				t.Fatalf("read %q since %d: message %d outside (since, last_id %d]", channels, reply.Since, m.ID, reply.LastID)
			}
		}
	}
}

// A huge max_message_size is no limit, not a negative one that refuses
// every body.
func TestHugeMaxMessageSize(t *testing.T) {
	h := testHandler(t, hub.Config{MaxMessageSize: math.MaxInt64 / 2})
	if err := h.hub.RegisterChannel(t.Context(), "a", false, 0); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/channels/a.json", strings.NewReader("content=hi"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec, _ := serve(t, h, r)
	if rec.Code != http.StatusOK || replyCode(t, rec) != hub.CodeOK {
		t.Errorf("publish: %d %s", rec.Code, rec.Body)
	}
}
