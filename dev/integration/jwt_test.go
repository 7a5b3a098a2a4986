package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/simple-comet/caddy-comet/internal/caddyproc"
	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// jwtTestKey is the HS256 secret of these tests' routes, which read it
// from the environment as {env.COMET_JWT_KEY}, as docs/security.md shows.
const jwtTestKey = "integration-test-secret-of-32+bytes"

// cometGrant is the comet claim of a token.
type cometGrant struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	Manage    bool     `json:"manage,omitempty"`
	Status    bool     `json:"status,omitempty"`
}

// mintToken signs an HS256 token with jwtTestKey, as a site's back end
// does, granting g until exp.
func mintToken(t *testing.T, g cometGrant, exp time.Time) string {
	t.Helper()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   "user-42",
		"exp":   exp.Unix(),
		"comet": g,
	}).SignedString([]byte(jwtTestKey))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// signClaims signs payload, byte for byte, as the claims of an HS256 token
// of jwtTestKey: claims no JWT library writes, but a holder of the key
// can sign.
func signClaims(t *testing.T, payload string) string {
	t.Helper()
	signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(jwtTestKey))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// withBearer sends a request with an Authorization: Bearer token.
func withBearer(t *testing.T, method, rawURL, token string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	return send(t, req)
}

// refused checks a 403 with -1 and the message want, and that the reply
// does not echo any of the tokens.
func refused(t *testing.T, r response, want string, tokens ...string) {
	t.Helper()
	body := r.body
	if strings.HasPrefix(body, "_JSONP_") {
		_, body, _ = strings.Cut(body, "(")
		body = strings.TrimSuffix(body, ");")
	}
	rep := response{status: r.status, body: body}.json(t)
	if r.status != http.StatusForbidden || rep.ReturnCode != -1 || rep.ErrorMessage != want {
		t.Fatalf("got HTTP %d %s, want 403 with -1 %q", r.status, r.body, want)
	}
	for _, token := range tokens {
		sig := strings.Split(token, ".")[2] // empty for alg none
		if strings.Contains(r.body, token) || sig != "" && strings.Contains(r.body, sig) {
			t.Fatalf("the reply %s echoes a token", r.body)
		}
	}
}

// TestJWTRoutes runs the API behind jwt blocks on a real Caddy: a route
// where every operation needs a token, and one where only publishing and
// managing do, on one hub.
func TestJWTRoutes(t *testing.T) {
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	private, public := freeport.Get(t), freeport.Get(t)
	startCaddy(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	comet {
		hub jwt_test
		enable_status
		jwt {
			key {env.COMET_JWT_KEY}
		}
	}
}
http://127.0.0.1:%d {
	comet {
		hub jwt_test
		allow subscribe publish
		jwt {
			key {env.COMET_JWT_KEY}
			require publish
		}
	}
}
`, private, public))
	base := fmt.Sprintf("http://127.0.0.1:%d", private)
	anonBase := fmt.Sprintf("http://127.0.0.1:%d", public)
	hour := time.Now().Add(time.Hour)
	admin := mintToken(t, cometGrant{Publish: []string{"*"}, Manage: true, Status: true}, hour)
	reader := mintToken(t, cometGrant{Subscribe: []string{"inbox-42"}}, hour)
	readerOnly := mintToken(t, cometGrant{Subscribe: []string{"*"}}, hour)
	expired := mintToken(t, cometGrant{Subscribe: []string{"*"}}, time.Now().Add(-time.Minute))
	parts := strings.Split(reader, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"exp": hour.Unix(), "comet": cometGrant{Subscribe: []string{"*"}},
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{admin, reader, readerOnly, expired, tampered, none}

	// Managing needs a token with "manage": true, as a Bearer header.
	refused(t, post(t, base+"/channels.json", url.Values{"channel_id": {"inbox-42"}}), "Missing token: send it as the token query parameter or an Authorization: Bearer header")
	refused(t, withBearer(t, http.MethodPost, base+"/channels.json", readerOnly, url.Values{"channel_id": {"inbox-42"}}),
		`Operation not covered by token: manage needs "manage": true`, all...)
	for _, ch := range []string{"inbox-42", "inbox-43"} {
		mustCode(t, withBearer(t, http.MethodPost, base+"/channels.json", admin, url.Values{"channel_id": {ch}}), 200, 1, "")
	}

	// A publisher without a publish claim is refused; one with it
	// publishes, with the token as a header or a parameter.
	refused(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json", readerOnly, url.Values{"content": {"x"}}),
		`Channel not covered by token: publish "inbox-42"`, all...)
	refused(t, post(t, anonBase+"/channels/inbox-42.json", url.Values{"content": {"x"}}), "Missing token: send it as the token query parameter or an Authorization: Bearer header")
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json", admin, url.Values{"content": {"for 42"}}), 200, 1, "")
	mustCode(t, post(t, anonBase+"/channels/inbox-43.json?token="+admin, url.Values{"content": {"for 43"}}), 200, 1, "")

	// A read covered for every channel gets its messages; one channel not
	// covered refuses the whole read, in the reply format of the path.
	rep := mustCode(t, get(t, base+"/channels/inbox-42.json?since=0&token="+reader), 200, 1, "")
	if m := rep.Messages["inbox-42"]; len(m) != 1 || m[0].Content != "for 42" {
		t.Fatalf("read inbox-42: %+v", rep.Messages)
	}
	r := get(t, base+"/channels/inbox-43.jsonp?since=0&cb=_JSONP_inbox&token="+reader)
	if !strings.HasPrefix(r.body, "_JSONP_inbox(") || !strings.HasPrefix(r.header.Get("Content-Type"), "application/javascript") {
		t.Fatalf("a refused JSON-P read: %s %q", r.header.Get("Content-Type"), r.body)
	}
	refused(t, r, `Channel not covered by token: subscribe "inbox-43"`, all...)
	refused(t, get(t, base+"/channels/inbox-42%7Cinbox-43.json?token="+reader), `Channel not covered by token: subscribe "inbox-43"`, all...)
	refused(t, get(t, base+"/channels/inbox-42.json?token="+expired), "Token expired", all...)
	refused(t, get(t, base+"/channels/inbox-42.json?token="+tampered), "Bad token signature", all...)
	refused(t, get(t, base+"/channels/inbox-42.json?token="+none), "Token algorithm not allowed: this route takes HS256", all...)
	refused(t, get(t, base+"/channels/inbox-42.json?token="+strings.Repeat("a", 8193)), "Token too long: at most 8192 bytes")

	// Claims are read with exact names: a second comet claim spelt
	// otherwise grants nothing, and a name given twice is refused.
	exp := strconv.FormatInt(hour.Unix(), 10)
	cased := signClaims(t, `{"exp":`+exp+`,"comet":{"subscribe":["inbox-42"]},"cOmEt":{"subscribe":["*"]}}`)
	twice := signClaims(t, `{"exp":`+exp+`,"comet":{"subscribe":["inbox-42"],"subscribe":["*"]}}`)
	mustCode(t, get(t, base+"/channels/inbox-42.json?since=0&token="+cased), 200, 1, "")
	refused(t, get(t, base+"/channels/inbox-43.json?token="+cased), `Channel not covered by token: subscribe "inbox-43"`, cased)
	refused(t, get(t, base+"/channels/inbox-42.json?token="+twice), `Malformed token: "subscribe" given twice in claim "comet"`, twice)
	refused(t, get(t, base+"/status.json?token="+reader), `Operation not covered by token: status needs "status": true`, all...)
	mustCode(t, get(t, base+"/status.json?token="+admin), 200, 1, "")

	// A held read with a token is released by a publish, as any read.
	done := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/channels/inbox-42.json?since=%d", base, rep.LastID), nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		res, err := longPoll.Do(req)
		if err != nil {
			done <- reply{ErrorMessage: err.Error()}
			return
		}
		defer res.Body.Close()
		var got reply
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
			got.ErrorMessage = err.Error()
		}
		done <- got
	}()
	heldReadsAt(t, base+"/status.json?token="+admin, 1)
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json", admin, url.Values{"content": {"later"}}), 200, 1, "")
	if got := <-done; got.ReturnCode != 1 || len(got.Messages["inbox-42"]) != 1 || got.Messages["inbox-42"][0].Content != "later" {
		t.Fatalf("held read: %+v", got)
	}

	// Where reads need no token, anyone reads; the script needs none
	// anywhere.
	mustCode(t, get(t, anonBase+"/channels/inbox-43.json?since=0"), 200, 1, "")
	if r := get(t, base+"/simple-comet.min.js"); r.status != http.StatusOK {
		t.Fatalf("the client script behind a jwt block: HTTP %d", r.status)
	}
}

// TestBrowserJWTExample runs examples/jwt as a user would: the page's
// token covers inbox-42 and not inbox-43; it reads the one over an event
// stream or JSON-P and is refused the other.
func TestBrowserJWTExample(t *testing.T) {
	chromium := browserChromium(t)
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	site, port := exampleSite(t, "jwt", "http://127.0.0.1:4100")
	startCaddy(t, site)
	if t.Failed() {
		t.FailNow()
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	comet := base + "/comet"
	hour := time.Now().Add(time.Hour)
	backEnd := mintToken(t, cometGrant{Publish: []string{"*"}, Manage: true}, hour)
	publishTo := func(ch, content string) {
		t.Helper()
		mustCode(t, withBearer(t, http.MethodPost, comet+"/channels/"+ch+".json", backEnd, url.Values{"content": {content}}), 200, 1, "")
	}
	browser := browserTab(t, chromium)
	token := mintToken(t, cometGrant{Subscribe: []string{"inbox-42"}}, hour)

	// The page as a modern browser runs it, on event streams, and as an
	// old one (no EventSource) does, on JSON-P. The page counts the
	// streams it opens.
	for _, variant := range []struct {
		name, before string
		streams      bool
	}{
		{"event streams", `var N = window.EventSource; window.EventSource = function (u) { window.streams = (window.streams || 0) + 1; return new N(u); };`, true},
		{"JSON-P", `window.EventSource = undefined;`, false},
	} {
		t.Run(variant.name, func(t *testing.T) {
			for _, ch := range []string{"inbox-42", "inbox-43"} {
				withBearer(t, http.MethodDelete, comet+"/channels/"+ch+".json", backEnd, nil)
				mustCode(t, withBearer(t, http.MethodPost, comet+"/channels.json", backEnd, url.Values{"channel_id": {ch}}), 200, 1, "")
			}
			publishTo("inbox-42", "hello 42")
			publishTo("inbox-43", "secret of 43")

			tab := &browserTabState{t: t, ctx: browserNewTab(t, browser)}
			tab.do("preparing the browser", chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
				_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument,
					page.AddScriptToEvaluateOnNewDocumentParams{Source: variant.before})
				return err
			}))
			tab.do("opening the page", chromedp.Navigate(base+"/#token="+token))
			has := func(list, text string) string {
				return fmt.Sprintf(`[].some.call(document.querySelectorAll('#%s li'), function (li) { return li.textContent === %q; })`, list, text)
			}
			tab.waitFor("inbox-42's message", has("inbox-42", "hello 42"))
			tab.waitFor("inbox-43 refused", `document.getElementById('status-inbox-43').textContent.indexOf('refused') === 0`)

			// The read of inbox-42 is held and gets what comes next;
			// inbox-43's messages never reach the page.
			publishTo("inbox-43", "more for 43")
			publishTo("inbox-42", "later 42")
			tab.waitFor("inbox-42's next message", has("inbox-42", "later 42"))
			if n := tab.int(`document.querySelectorAll('#inbox-43 li').length`); n != 0 {
				t.Fatalf("the page shows %d messages of inbox-43", n)
			}
			if n := tab.int(`document.querySelectorAll('#inbox-42 li').length`); n != 2 {
				t.Fatalf("the page shows %d messages of inbox-42, want 2", n)
			}
			// Which transport carried inbox-42: a JSON-P read that
			// completed is in the page's resource timing.
			polls := tab.int(`performance.getEntriesByType('resource').filter(function (e) { return e.name.indexOf('inbox-42.jsonp') >= 0; }).length`)
			streams := tab.int(`window.streams || 0`)
			if variant.streams && (streams == 0 || polls != 0) {
				t.Errorf("inbox-42 read by %d JSON-P polls and %d streams opened, want its stream alone", polls, streams)
			}
			if !variant.streams && (streams != 0 || polls == 0) {
				t.Errorf("inbox-42 read by %d JSON-P polls and %d streams opened, want JSON-P alone", polls, streams)
			}
		})
	}
}

// TestJWTTokenCommandAndLogs runs the caddy binary as an operator does:
// `caddy comet-token` mints the tokens, and a Caddy with debug logging
// and the access-log filter of docs/security.md serves them. No token shows up in its
// log, though every request and every refusal is logged.
func TestJWTTokenCommandAndLogs(t *testing.T) {
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	bin := caddyproc.Build(t)
	mint := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"comet-token"}, args...)...).Output()
		if err != nil {
			t.Fatalf("caddy comet-token %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	backEnd := mint("--publish", "*", "--manage", "--ttl", "5m")
	reader := mint("--subscribe", "inbox-42", "--ttl", "1h")

	port, admin := freeport.Get(t), freeport.Get(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := caddyproc.StartCaddyfile(t, fmt.Sprintf(`{
	debug
	admin 127.0.0.1:%d
	persist_config off
	grace_period 1s
	log default {
		exclude http.handlers.rewrite
	}
	log rewrites {
		include http.handlers.rewrite
		level DEBUG
		format filter {
			uri query {
				delete token
			}
			request>uri query {
				delete token
			}
		}
	}
}
%s {
	bind 127.0.0.1
	log {
		format filter {
			request>uri query {
				delete token
			}
		}
	}
	handle_path /comet/* {
		comet {
			jwt {
				key {env.COMET_JWT_KEY}
			}
		}
	}
	handle {
		comet {
			jwt {
				key {env.COMET_JWT_KEY}
			}
		}
	}
}
`, admin, base))
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels.json", backEnd, url.Values{"channel_id": {"inbox-42"}}), 200, 1, "")
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json", backEnd, url.Values{"content": {"hello"}}), 200, 1, "")
	rep := mustCode(t, get(t, base+"/channels/inbox-42.json?since=0&token="+reader), 200, 1, "")
	if len(rep.Messages["inbox-42"]) != 1 {
		t.Fatalf("read: %+v", rep)
	}
	refused(t, get(t, base+"/channels/inbox-43.json?since=0&token="+reader), `Channel not covered by token: subscribe "inbox-43"`, reader)
	refused(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json?token="+reader, reader, url.Values{"content": {"x"}}),
		`Channel not covered by token: publish "inbox-42"`, reader)
	// An API error of the hub, logged with its URI, on a request with a
	// token: the URI is logged without it.
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json?token="+backEnd, backEnd, url.Values{}), 200, -1, "Missing content")

	// The same through handle_path, whose rewrite Caddy logs at DEBUG
	// with the URI: the log filter of docs/security.md for it takes the token out.
	mustCode(t, get(t, base+"/comet/channels/inbox-42.json?since=0&token="+reader), 200, 1, "")
	refused(t, get(t, base+"/comet/channels/inbox-43.json?since=0&token="+reader), `Channel not covered by token: subscribe "inbox-43"`, reader)

	// A held read woken by a publish, and an event stream that ends when
	// its channel is deleted, which comet logs with the stream's URI.
	held := make(chan response, 1)
	go func() {
		held <- get(t, base+"/comet/channels/inbox-42.json?since="+fmt.Sprint(rep.LastID)+"&token="+reader)
	}()
	s, res := openSSE(t, sseClient, base+"/comet/channels/inbox-42.sse?token="+url.QueryEscape(reader), "")
	if s == nil {
		t.Fatalf("a stream of inbox-42: HTTP %d %s", res.status, res.body)
	}
	s.next(t, ssePatience)
	mustCode(t, withBearer(t, http.MethodPost, base+"/channels/inbox-42.json", backEnd, url.Values{"content": {"woke"}}), 200, 1, "")
	if got := s.next(t, ssePatience).reply(t).Messages["inbox-42"]; len(got) != 1 || got[0].Content != "woke" {
		t.Fatalf("the stream got %+v", got)
	}
	if got := mustCode(t, <-held, 200, 1, "").Messages["inbox-42"]; len(got) != 1 || got[0].Content != "woke" {
		t.Fatalf("the held read got %+v", got)
	}
	mustCode(t, withBearer(t, http.MethodDelete, base+"/channels/inbox-42.json", backEnd, nil), 200, 2, "")
	if ev := s.next(t, ssePatience); ev.end == nil {
		t.Fatalf("the stream of a deleted channel goes on: %+v", ev)
	}

	p.WaitLog("token refused", "inbox-43")
	p.WaitLog("api error", "Missing content", "REDACTED")
	p.WaitLog("http.log.access", "/channels/inbox-42.json?since=0")
	p.WaitLog("rewrote request", "/channels/inbox-42.json?since=0")
	p.WaitLog("event stream ended", "inbox-42.sse?token=REDACTED")
	p.Stop()
	log := p.Log()
	for name, token := range map[string]string{"back end": backEnd, "reader": reader} {
		// The header part is the same in every HS256 token; the payload
		// and the signature are the token's own.
		parts := strings.Split(token, ".")
		for what, part := range map[string]string{"payload": parts[1], "signature": parts[2]} {
			if strings.Contains(log, part) {
				t.Errorf("the %s token's %s is in Caddy's log", name, what)
			}
		}
	}
}

// An event stream is a read: its token comes as the token parameter
// (EventSource sends no headers), must cover every channel of the stream,
// and a refusal is the 403 of a read, before the stream starts.
func TestJWTEventStreams(t *testing.T) {
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	port := freeport.Get(t)
	startCaddy(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	comet {
		hub jwt_sse
		jwt {
			key {env.COMET_JWT_KEY}
		}
	}
}
`, port))
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	hour := time.Now().Add(time.Hour)
	admin := mintToken(t, cometGrant{Publish: []string{"*"}, Manage: true}, hour)
	for _, ch := range []string{"inbox-42", "inbox-43"} {
		mustCode(t, withBearer(t, http.MethodPost, site+"/channels.json", admin, url.Values{"channel_id": {ch}}), 200, 1, "")
	}
	reader := mintToken(t, cometGrant{Subscribe: []string{"inbox-42"}}, hour)
	stream := func(channels, token string) string {
		return site + "/channels/" + url.PathEscape(channels) + ".sse?token=" + url.QueryEscape(token)
	}

	s, res := openSSE(t, sseClient, stream("inbox-42", reader), "")
	if s == nil {
		t.Fatalf("a stream of inbox-42 with its token: HTTP %d %s", res.status, res.body)
	}
	s.next(t, ssePatience) // the first event: nothing yet
	mustCode(t, withBearer(t, http.MethodPost, site+"/channels/inbox-42.json", admin, url.Values{"content": {"for 42"}}), 200, 1, "")
	if got := s.next(t, ssePatience).reply(t).Messages["inbox-42"]; len(got) != 1 || got[0].Content != "for 42" {
		t.Fatalf("the stream of inbox-42 got %+v", got)
	}

	// A stream ends when its token expires, and a reconnect with it is
	// refused: a stream never outlives what allowed it.
	exp := time.Now().Add(2 * time.Second)
	shortLived := mintToken(t, cometGrant{Subscribe: []string{"inbox-42"}}, exp)
	s, res = openSSE(t, sseClient, stream("inbox-42", shortLived), "")
	if s == nil {
		t.Fatalf("a stream with a token valid for 2s: HTTP %d %s", res.status, res.body)
	}
	first := s.next(t, ssePatience)
	if ev := s.next(t, ssePatience); ev.end == nil {
		t.Fatalf("a stream whose token expired goes on: %+v", ev)
	}
	if ended := time.Now(); ended.Before(time.Unix(exp.Unix(), 0)) {
		t.Fatalf("the stream ended at %v, before its token's exp %v", ended, time.Unix(exp.Unix(), 0))
	}
	_, res = openSSE(t, sseClient, stream("inbox-42", shortLived), first.id)
	refused(t, res, "Token expired", shortLived)

	for _, tc := range []struct{ channels, token, want string }{
		{"inbox-43", reader, `Channel not covered by token: subscribe "inbox-43"`},
		{"inbox-42|inbox-43", reader, `Channel not covered by token: subscribe "inbox-43"`},
		{"inbox-42", "", "Missing token: send it as the token query parameter or an Authorization: Bearer header"},
	} {
		s, res := openSSE(t, sseClient, stream(tc.channels, tc.token), "")
		if s != nil {
			t.Fatalf("a stream of %s was opened", tc.channels)
		}
		refused(t, res, tc.want, reader)
	}
}

// A long poll is held no longer than its token is taken (exp plus
// leeway): one whose token expires while it is held is answered as a
// timeout, and a message published after that does not reach it.
func TestJWTHeldReadEndsWithItsToken(t *testing.T) {
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	port := freeport.Get(t)
	startCaddy(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	comet {
		hub jwt_held
		http_timeout 1m
		jwt {
			key {env.COMET_JWT_KEY}
			leeway 1s
		}
	}
}
`, port))
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	admin := mintToken(t, cometGrant{Publish: []string{"*"}, Manage: true}, time.Now().Add(time.Hour))
	mustCode(t, withBearer(t, http.MethodPost, site+"/channels.json", admin, url.Values{"channel_id": {"inbox-42"}}), 200, 1, "")
	since := mustCode(t, withBearer(t, http.MethodPost, site+"/channels/inbox-42.json", admin, url.Values{"content": {"before"}}), 200, 1, "").MessageID

	exp := time.Now().Add(2 * time.Second)
	taken := time.Unix(exp.Unix(), 0).Add(time.Second) // exp has whole seconds; plus leeway
	reader := mintToken(t, cometGrant{Subscribe: []string{"inbox-42"}}, exp)
	answered := make(chan response, 1)
	go func() {
		answered <- get(t, fmt.Sprintf("%s/channels/inbox-42.json?since=%d&token=%s", site, since, reader))
	}()
	// The message comes once the token is no longer taken: by the wall
	// clock, which is what expiry is measured by.
	published := make(chan time.Time, 1)
	go func() {
		time.Sleep(time.Until(taken.Add(500 * time.Millisecond)))
		published <- time.Now()
		mustCode(t, withBearer(t, http.MethodPost, site+"/channels/inbox-42.json", admin, url.Values{"content": {"after"}}), 200, 1, "")
	}()

	r := <-answered
	at := time.Now()
	rep := mustCode(t, r, 200, 1, "")
	if got := rep.Messages["inbox-42"]; len(got) != 0 {
		t.Fatalf("a read held past its token's expiry got %+v, want no messages", got)
	}
	if at.Before(taken) {
		t.Errorf("the held read was answered at %v, before its token stopped being taken at %v", at, taken)
	}
	if p := <-published; at.After(p) {
		t.Errorf("the held read was answered at %v, after the next message was published at %v", at, p)
	}
	// Reading on with the expired token is refused.
	refused(t, get(t, fmt.Sprintf("%s/channels/inbox-42.json?since=%d&token=%s", site, rep.LastID, reader)), "Token expired", reader)
}
