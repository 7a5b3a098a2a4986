package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// The browser tests run the JavaScript client in Debian's headless Chromium
// against a real Caddy: a page served on one port subscribes through JSON-P
// to the comet handler on another port, so every read is a cross-origin
// <script> load, as on a production site.

// browserPageMsg is what the test page records for each message in the
// replies a subscription's callback gets.
type browserPageMsg struct {
	Channel string `json:"channel"`
	Content string `json:"content"`
	ID      int64  `json:"id"`
	TS      int64  `json:"ts"`
}

// browserPageReply is what the test page records for each call of a
// subscription's callback: the reply object's fields, and the channels its
// messages object holds.
type browserPageReply struct {
	Since        int64    `json:"since"`
	LastID       int64    `json:"last_id"`
	ReturnCode   int      `json:"return_code"`
	ErrorMessage string   `json:"error_message"`
	Channels     []string `json:"channels"`
}

// browserPage is the test page. It loads the min client from the comet
// server, subscribes before start() (multi: two channels joined by |;
// session: a session channel with a client id that needs escaping, whose
// callback throws after each reply; dropped: the one the test unsubscribes),
// and counts <script> nodes that failed to load. Its callbacks take the
// reply object, as pages written for the original client do: each call is
// recorded in replies, and the messages of the reply in got.
const browserPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet browser test</title></head>
<body>
<script src="{COMET}/simple-comet.min.js"></script>
<script>
var got = {multi: [], session: [], dropped: [], late: []},
	replies = {multi: [], session: [], dropped: [], late: []},
	loadErrors = 0, subs;
document.addEventListener('error', function (e) {
	if (e.target && e.target.tagName === 'SCRIPT') loadErrors++;
}, true);
function recorder(sub, throws) {
	return function (reply) {
		var channel, list, i, channels = [];
		for (channel in reply.messages) {
			channels.push(channel);
			list = reply.messages[channel];
			for (i = 0; i < list.length; i++) {
				got[sub].push({channel: channel, content: list[i].content, id: list[i].id, ts: list[i].ts});
			}
		}
		replies[sub].push({since: reply.since, last_id: reply.last_id, return_code: reply.return_code,
			error_message: reply.error_message, channels: channels});
		if (throws) {
			throw new Error('a page bug');
		}
	};
}
SimpleComet.timeout = {TIMEOUT};
subs = {
	multi: SimpleComet.subscribe('{COMET}/channels/alpha%7Cbeta.jsonp', recorder('multi')),
	session: SimpleComet.subscribe('{COMET}/channels/private.jsonp', recorder('session', true), {CLIENT}),
	dropped: SimpleComet.subscribe('{COMET}/channels/gamma.jsonp', recorder('dropped'))
};
window.onload = SimpleComet.start;
</script>
</body>
</html>
`

// browserClientID needs escaping in a query string.
const browserClientID = "reader/1 &x=é"

// browserHTTPTimeout is the comet handler's http_timeout in these tests:
// short, so that held reads also end empty and the client polls again.
const browserHTTPTimeout = 2 * time.Second

// Contents that must come through JSON-P and the client unchanged, and must
// not run as script.
var browserTricky = []string{
	`</script><script>window.pwned = 1</script>`,
	`"quoted" \backslash\ & <b>bold</b> '); window.pwned = 2; ('`,
	"line\nbreak\u2028line\u2029sep é ✓ 🎉 \x00 nul",
}

func TestBrowserClient(t *testing.T) {
	chromium := browserChromium(t)

	pagePort, cometPort := freeport.Get(t), freeport.Get(t)
	comet := &browserComet{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", cometPort)}
	siteDir := t.TempDir()
	clientJS, _ := json.Marshal(browserClientID)
	page := strings.NewReplacer(
		"{COMET}", comet.base,
		"{CLIENT}", string(clientJS),
		// Longer than http_timeout, as the default is longer than the
		// default http_timeout.
		"{TIMEOUT}", strconv.FormatInt((browserHTTPTimeout+4*time.Second).Milliseconds(), 10),
	).Replace(browserPage)
	if err := os.WriteFile(filepath.Join(siteDir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := browserConfig{pagePort: pagePort, cometPort: cometPort, siteDir: siteDir}

	tester := startCaddy(t, cfg.sites(true))
	if t.Failed() {
		t.FailNow()
	}

	comet.setUp()
	// Published before the page loads: a subscription starts at since=0,
	// so it gets what the channel retains.
	comet.publish("alpha", "a0 before the page")

	tab := browserTab(t, chromium)
	p := &browserTabState{t: t, ctx: tab, subs: map[string][]string{
		"multi":   {"alpha", "beta"},
		"session": {"private"},
	}}
	p.do("loading the page", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pagePort)))
	p.waitFor("the retained message", `got.multi.length >= 1`)

	// Interleaved publishes on every channel, with contents that try to
	// break out of the JSON-P reply.
	comet.publish("alpha", "a1 "+browserTricky[0])
	comet.publish("beta", "b1 "+browserTricky[1])
	comet.publish("private", "p1 "+browserTricky[2])
	comet.publish("alpha", "a2")
	comet.publish("gamma", "g1")
	comet.publish("beta", "b2")
	p.waitForCounts(map[string]int{"multi": 5, "session": 1, "dropped": 1})
	p.check(comet)

	// A read held until http_timeout ends in a reply with no messages; the
	// callback gets that reply too, as the original client's did.
	for _, sub := range []string{"multi", "session"} {
		p.waitFor("an empty reply on "+sub, `replies.`+sub+`.some(function (r) { return r.channels.length === 0; })`)
	}

	// A subscription made after start() begins at once, and gets what its
	// channels retain.
	p.do("subscribing after start", chromedp.Evaluate[chromedp.Void](
		`subs.late = SimpleComet.subscribe('`+comet.base+`/channels/beta%7Cgamma.jsonp', recorder('late')); undefined`))
	p.subs["late"] = []string{"beta", "gamma"}
	p.waitForCounts(map[string]int{"late": 3})
	p.check(comet)

	// Unsubscribing: once its held read has ended (at http_timeout, or on
	// the next message) it has no <script> node left and makes no request.
	// The twin subscription "late" also reads gamma and proves that what is
	// published there gets delivered.
	droppedReplies := p.int(`subs.dropped.unsubscribe(), replies.dropped.length`)
	p.waitFor("the unsubscribed subscription's last request to end",
		`!document.querySelector('script[src*="/channels/gamma.jsonp?"]')`)
	comet.publish("gamma", "g2 after unsubscribe")
	p.waitForCounts(map[string]int{"late": 4})
	comet.publish("gamma", "g3 after unsubscribe")
	p.waitForCounts(map[string]int{"late": 5})
	if n := p.int(`replies.dropped.length`); n != droppedReplies {
		t.Fatalf("the unsubscribed callback was called %d times, %d of them after unsubscribe", n, n-droppedReplies)
	}
	p.check(comet)

	// Stop the comet server (a config without its site), and keep it down
	// until the page has failed to reach it: held reads are answered when
	// it stops, and the client's next polls fail to connect. Then start it
	// again and publish while the client is still waiting to retry: it
	// must come back by itself and read everything since its last id.
	errorsBefore := p.int("loadErrors")
	p.restartAt = map[string]int{}
	for sub := range p.subs {
		p.restartAt[sub] = p.int("replies." + sub + ".length")
	}
	tester.InitServer(globalOptions+cfg.sites(false), "caddyfile")
	comet.waitDown()
	p.waitFor("the client to fail to reach the stopped server", fmt.Sprintf("loadErrors > %d", errorsBefore))
	tester.InitServer(globalOptions+cfg.sites(true), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	comet.setUp()
	comet.publish("alpha", "a3 after the restart")
	comet.publish("private", "p2 after the restart")
	comet.publish("beta", "b3 after the restart")
	comet.publish("gamma", "g4 after the restart")
	p.waitForCounts(map[string]int{"multi": 7, "session": 2, "late": 7})
	p.check(comet)
	if n := p.int(`replies.dropped.length`); n != droppedReplies {
		t.Fatalf("the unsubscribed callback was called %d times, %d of them after unsubscribe", n, n-droppedReplies)
	}

	// Nothing was run from message contents, and no script node was left
	// behind: each live subscription has at most one request in flight,
	// plus the page's own two scripts.
	if pwned := p.int("window.pwned || 0"); pwned != 0 {
		t.Errorf("message content ran as script (window.pwned = %d)", pwned)
	}
	if n := p.int("document.getElementsByTagName('script').length"); n > 2+3 {
		t.Errorf("%d <script> nodes in the page, want at most 5 (2 of the page, 1 per live subscription)", n)
	}
}

// browserComet talks to the comet handler from Go and remembers what it
// published, to check what the page received.
type browserComet struct {
	t         *testing.T
	base      string
	published map[string][]browserPageMsg // by channel, oldest first
}

// setUp registers the channels and the session client. After a restart of
// an in-memory hub they are gone and get registered again; when they
// survived, registering again answers -2, which is fine too.
func (c *browserComet) setUp() {
	c.t.Helper()
	for _, ch := range []url.Values{
		{"channel_id": {"alpha"}},
		{"channel_id": {"beta"}},
		{"channel_id": {"gamma"}},
		{"channel_id": {"private"}, "use_sessions": {"1"}},
	} {
		c.register("/channels.json", ch)
	}
	c.register("/clients.json", url.Values{"client_id": {browserClientID}})
}

// register creates a channel or a client, or finds it there already.
func (c *browserComet) register(path string, form url.Values) {
	c.t.Helper()
	r := post(c.t, c.base+path, form)
	if rep := r.json(c.t); r.status != http.StatusOK || (rep.ReturnCode != 1 && rep.ReturnCode != -2) {
		c.t.Fatalf("POST %s %v: HTTP %d %s", path, form, r.status, r.body)
	}
}

func (c *browserComet) publish(channel, content string) {
	c.t.Helper()
	id := publish(c.t, c.base, channel, content)
	if c.published == nil {
		c.published = map[string][]browserPageMsg{}
	}
	c.published[channel] = append(c.published[channel], browserPageMsg{Channel: channel, Content: content, ID: id})
}

// waitDown waits until the comet port refuses connections.
func (c *browserComet) waitDown() {
	c.t.Helper()
	addr := strings.TrimPrefix(c.base, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		conn.Close()
		if time.Now().After(deadline) {
			c.t.Fatalf("the comet server on %s still accepts connections after its site was removed", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// browserTabState drives the test page.
type browserTabState struct {
	t   *testing.T
	ctx context.Context
	// subs maps the live subscriptions the test checks to their channels.
	subs map[string][]string
	// restartAt holds, once the comet server has been restarted, how many
	// replies each subscription had got before.
	restartAt map[string]int
}

// browserStep bounds each browser step; the client may be in a backoff of
// up to 8 seconds after the restart.
const browserStep = 45 * time.Second

func (p *browserTabState) do(what string, a chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserStep)
	defer cancel()
	if _, err := chromedp.Run(ctx, a); err != nil {
		p.fatalf("%s: %v", what, err)
	}
}

// waitFor polls a JavaScript condition in the page until it holds.
func (p *browserTabState) waitFor(what, cond string) {
	p.t.Helper()
	p.do("waiting for "+what+" ("+cond+")", chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(browserStep)))
}

// waitForCounts waits until each named subscription has recorded n
// messages, then checks that none recorded more.
func (p *browserTabState) waitForCounts(want map[string]int) {
	p.t.Helper()
	var conds []string
	for sub, n := range want {
		conds = append(conds, fmt.Sprintf("got.%s.length >= %d", sub, n))
	}
	p.waitFor("messages", strings.Join(conds, " && "))
	for sub, n := range want {
		if got := p.count(sub); got != n {
			p.fatalf("subscription %s has %d messages, want %d", sub, got, n)
		}
	}
}

func (p *browserTabState) count(sub string) int {
	p.t.Helper()
	return p.int("got." + sub + ".length")
}

func (p *browserTabState) int(expr string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserStep)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		p.fatalf("evaluating %s: %v", expr, err)
	}
	return n
}

// pageValue reads a global of the test page as T.
func pageValue[T any](p *browserTabState, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("reading %s from the page: %v", expr, err)
	}
	return v
}

// check compares what each subscription got with what was published on its
// channels: per channel, every message exactly once, oldest first, with the
// id and content the server gave it.
func (p *browserTabState) check(c *browserComet) {
	p.t.Helper()
	p.checkReplies()
	got := pageValue[map[string][]browserPageMsg](p, `got`)
	for sub, chans := range p.subs {
		byChannel := map[string][]browserPageMsg{}
		for _, m := range got[sub] {
			byChannel[m.Channel] = append(byChannel[m.Channel], m)
		}
		for ch := range byChannel {
			if !containsString(chans, ch) {
				p.fatalf("subscription %s got a message on channel %q, which it did not ask for", sub, ch)
			}
		}
		now := time.Now().Unix()
		for _, ch := range chans {
			want, have := c.published[ch], byChannel[ch]
			if len(have) != len(want) {
				p.fatalf("subscription %s got %d messages on %s, want %d", sub, len(have), ch, len(want))
			}
			for i := range want {
				if have[i].ID != want[i].ID || have[i].Content != want[i].Content {
					p.fatalf("subscription %s, channel %s, message %d: got id %d %q, want id %d %q",
						sub, ch, i, have[i].ID, have[i].Content, want[i].ID, want[i].Content)
				}
				if have[i].TS < now-300 || have[i].TS > now+5 {
					p.fatalf("subscription %s, channel %s, message %d: ts %d is not about now (%d)", sub, ch, i, have[i].TS, now)
				}
			}
		}
	}
	// dropped must hold exactly what gamma had before the unsubscribe: g1.
	if d := got["dropped"]; len(d) > 0 && (d[0].Content != "g1" || len(d) > 1) {
		p.fatalf("the unsubscribed subscription got %+v, want only g1", d)
	}
}

// checkReplies checks the reply objects each subscription's callback got:
// good replies only, as the server sent them, on the subscription's own
// channels, each read with the cursor the one before it gave (since =
// last_id), starting at since=0. After a restart of the comet server the
// cursor may be clamped to the newest id of the new hub, so from then on a
// reply's since may be lower than the last_id before it, never higher.
func (p *browserTabState) checkReplies() {
	p.t.Helper()
	replies := pageValue[map[string][]browserPageReply](p, `replies`)
	for sub, chans := range p.subs {
		for i, r := range replies[sub] {
			if r.ReturnCode != 1 || r.ErrorMessage != "" {
				p.fatalf("subscription %s, reply %d: return_code %d, error_message %q; want only good replies", sub, i, r.ReturnCode, r.ErrorMessage)
			}
			for _, ch := range r.Channels {
				if !containsString(chans, ch) {
					p.fatalf("subscription %s, reply %d holds channel %q, which it did not ask for", sub, i, ch)
				}
			}
			if r.LastID < r.Since {
				p.fatalf("subscription %s, reply %d: last_id %d is below since %d", sub, i, r.LastID, r.Since)
			}
			var prev int64
			if i > 0 {
				prev = replies[sub][i-1].LastID
			}
			restarted, ok := p.restartAt[sub]
			if r.Since != prev && !(ok && i >= restarted && r.Since < prev) {
				p.fatalf("subscription %s, reply %d: since %d, want the last_id of the reply before (%d)", sub, i, r.Since, prev)
			}
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// fatalf logs what the page recorded, to tell a client bug from a server
// one, and fails the test.
func (p *browserTabState) fatalf(format string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`JSON.stringify({got: window.got, replies: window.replies, loadErrors: window.loadErrors, text: document.body.innerText.slice(0, 2000), scripts: [].map.call(document.getElementsByTagName('script'), function (s) { return s.src; })})`))
	if err != nil {
		state = "(unreadable: " + err.Error() + ")"
	}
	p.t.Logf("page state: %s", state)
	p.t.Fatalf(format, args...)
}

// browserConfig is the Caddy configuration of the browser tests.
type browserConfig struct {
	pagePort, cometPort int
	siteDir             string
}

// sites returns the sites (to follow globalOptions): the page's, and the
// comet handler's unless withComet is false.
func (c browserConfig) sites(withComet bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
http://127.0.0.1:%d {
	root * %q
	file_server
}
`, c.pagePort, c.siteDir)
	if withComet {
		fmt.Fprintf(&b, `
http://127.0.0.1:%d {
	comet {
		hub browser_test
		http_timeout %s
	}
}
`, c.cometPort, browserHTTPTimeout)
	}
	return b.String()
}

// browserChromium finds Debian's chromium, or skips (fails under CI=true).
func browserChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install -y chromium); CI must run the browser tests")
	}
	t.Skip("chromium is not installed; to run the browser tests: apt-get install -y chromium")
	return ""
}

// browserTab starts a headless Chromium with a fresh profile and returns a
// tab's context; the browser stops when the test ends. extra adds to the
// command line (flags of the test's own).
func browserTab(t *testing.T, execPath string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Stop the browser before its profile directory is removed.
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, on a context without a deadline: a deadline
	// on the first run would stop the whole browser when it passes.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}
