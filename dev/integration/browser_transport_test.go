package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// transportPage subscribes to one channel with the client the test names
// ({SCRIPT}), on the page's own origin (event streams need CORS across
// origins; JSON-P does not). It counts the event streams the client opens
// and the JSON-P script nodes it adds, so the test can tell which transport
// carried what. {OLD} set to true makes the page an old browser's: no
// EventSource at all.
const transportPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet transports</title></head>
<body>
<script>
var got = [], streams = 0, polls = 0, Native = window.EventSource;
if ({OLD}) {
	window.EventSource = undefined;
} else {
	window.EventSource = function (url) { streams++; return new Native(url); };
}
new MutationObserver(function (changes) {
	for (var i = 0; i < changes.length; i++) {
		for (var j = 0; j < changes[i].addedNodes.length; j++) {
			var n = changes[i].addedNodes[j];
			if (n.tagName === 'SCRIPT' && n.src.indexOf('/comet/channels/') >= 0) polls++;
		}
	}
}).observe(document.documentElement, {childList: true, subtree: true});
</script>
<script src="/comet/{SCRIPT}"></script>
<script>
SimpleComet.subscribe('/comet/channels/room.jsonp', function (reply) {
	var list = reply.messages.room || [];
	for (var i = 0; i < list.length; i++) got.push(list[i].content);
});
window.onload = SimpleComet.start;
</script>
</body>
</html>
`

// transportSite serves the test pages and the comet API on one origin.
func transportSite(port int, dir, httpTimeout string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	handle_path /comet/* {
		comet {
			hub transports
			http_timeout %s
		}
	}
	handle {
		root * %q
		file_server
	}
}
`, port, httpTimeout, dir)
}

// startTransportPages writes the test pages and starts the site. reload
// loads it again with another http_timeout: a configuration that differs,
// as Caddy does not reload an unchanged one.
func startTransportPages(t *testing.T) (base string, reload func()) {
	t.Helper()
	dir := t.TempDir()
	for name, r := range map[string]*strings.Replacer{
		"modern.html": strings.NewReplacer("{SCRIPT}", "simple-comet.min.js", "{OLD}", "false"),
		"old.html":    strings.NewReplacer("{SCRIPT}", "simple-comet.min.js", "{OLD}", "true"),
		"jsonp.html":  strings.NewReplacer("{SCRIPT}", "simple-comet-jsonp.min.js", "{OLD}", "false"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(r.Replace(transportPage)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freeport.Get(t)
	startCaddy(t, transportSite(port, dir, "2s"))
	if t.Failed() {
		t.FailNow()
	}
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	registerChannel(t, base+"/comet", "room")
	return base, func() {
		t.Helper()
		if err := loadCaddyfile(transportSite(port, dir, "3s")); err != nil {
			t.Fatalf("reloading: %v", err)
		}
	}
}

// One hub serves a modern browser over an event stream and an old one (no
// EventSource) over JSON-P, and the JSON-P client alone polls even where
// the browser has EventSource: each page gets every message once, in order.
func TestBrowserTransports(t *testing.T) {
	chromium := browserChromium(t)
	base, _ := startTransportPages(t)
	modern := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	old := &browserTabState{t: t, ctx: browserNewTab(t, modern.ctx)}
	jsonpOnly := &browserTabState{t: t, ctx: browserNewTab(t, modern.ctx)}
	for i, tab := range []struct {
		state *browserTabState
		page  string
	}{{modern, "modern.html"}, {old, "old.html"}, {jsonpOnly, "jsonp.html"}} {
		tab.state.do("opening "+tab.page, chromedp.Navigate(base+"/"+tab.page))
		eventuallyMetric(t, `caddy_comet_held_reads{hub="transports"}`, float64(i+1))
	}
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprint("m", i))
		publish(t, base+"/comet", "room", want[i])
	}
	all := `got.join() === ` + jsString(strings.Join(want, ","))
	for name, tab := range map[string]*browserTabState{"modern": modern, "old": old, "jsonp": jsonpOnly} {
		tab.waitFor(name+" page's messages", all)
		streams, polls := tab.int("streams"), tab.int("polls")
		switch {
		case name == "modern" && (streams != 1 || polls != 0):
			t.Errorf("modern page: %d event streams and %d JSON-P polls, want one stream and no poll", streams, polls)
		case name != "modern" && (streams != 0 || polls == 0):
			t.Errorf("%s page: %d event streams and %d JSON-P polls, want JSON-P alone", name, streams, polls)
		}
	}
}

// SimpleComet.transport moves a live subscription from one transport to the
// other when its current request ends, with its since: nothing is lost or
// repeated on the way over, either way.
func TestBrowserTransportSwitch(t *testing.T) {
	chromium := browserChromium(t)
	base, reload := startTransportPages(t)
	tab := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	tab.do("opening the page", chromedp.Navigate(base+"/modern.html"))
	eventuallyMetric(t, `caddy_comet_held_reads{hub="transports"}`, 1)

	var want []string
	publishSome := func(from, to int) {
		for i := from; i < to; i++ {
			want = append(want, fmt.Sprint("m", i))
			publish(t, base+"/comet", "room", want[len(want)-1])
		}
		tab.waitFor(fmt.Sprintf("messages up to m%d", to-1), `got.join() === `+jsString(strings.Join(want, ",")))
	}
	publishSome(0, 3)
	if s, p := tab.int("streams"), tab.int("polls"); s != 1 || p != 0 {
		t.Fatalf("before the switch: %d streams, %d polls; want the event stream", s, p)
	}

	// Over to JSON-P: the stream goes on until it ends, here by a reload
	// of the server (a stream ends on reload; the client reconnects).
	tab.do("asking for JSON-P", chromedp.Evaluate[chromedp.Void](`SimpleComet.transport = 'jsonp'`))
	reload()
	tab.waitFor("a JSON-P poll", `polls > 0`)
	publishSome(3, 6)

	// And back to event streams: a JSON-P poll ends with every reply.
	tab.do("asking for event streams", chromedp.Evaluate[chromedp.Void](`SimpleComet.transport = 'sse'`))
	publishSome(6, 8)
	tab.waitFor("a second event stream", `streams === 2`)
	publishSome(8, 11)
	if s := tab.int("streams"); s != 2 {
		t.Errorf("%d event streams opened, want 2 (before and after JSON-P)", s)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return fmt.Sprintf("%q", s) }
