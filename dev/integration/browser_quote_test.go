package integration

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// quoteHostile tries to end the /*-secure- ... */ comment of a quoted JSON
// reply and run script in the page that includes the reply.
const quoteHostile = "*/ window.pwned = 1; document.title = 'PWNED-' + document.domain; /*"

// quoteHostileID is a channel id that tries the same through /status.json
// and the read reply's messages object.
const quoteHostileID = "*/ window.pwnedByID = 1; /*"

// quotePage includes quoted .json replies carrying hostile content and ids
// from another origin with <script src>, as an attacker's page would, from
// two comet sites: one as the module answers, one behind a `header` that
// strips X-Content-Type-Options (a proxy that drops it), where escaping
// alone must hold. Each include counts as done when it loads or fails. A
// JSON-P read of the same content is the control: it must run, and hand its
// callback the content intact.
const quotePage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>quote test</title></head>
<body>
<script>
var done = 0, control = null;
function _JSONP_control(reply) { control = reply.messages.news[0].content; }
</script>
<script src="{COMET}/channels/news.json?since=0" onload="done++" onerror="done++"></script>
<script src="{COMET}/channels/{HOSTILE}.json?since=0" onload="done++" onerror="done++"></script>
<script src="{COMET}/status.json" onload="done++" onerror="done++"></script>
<script src="{BARE}/channels/news.json?since=0" onload="done++" onerror="done++"></script>
<script src="{BARE}/channels/{HOSTILE}%7Cnews.json?since=0" onload="done++" onerror="done++"></script>
<script src="{BARE}/status.json" onload="done++" onerror="done++"></script>
<script src="{BARE}/channels/news.jsonp?since=0&cb=_JSONP_control" onload="done++" onerror="done++"></script>
</body>
</html>
`

// With quote_json on, no content or channel id can run as script in a page
// that includes a .json reply, with X-Content-Type-Options or without it.
func TestBrowserQuotedJSONDoesNotRun(t *testing.T) {
	chromium := browserChromium(t)
	pagePort, cometPort, barePort := freeport.Get(t), freeport.Get(t), freeport.Get(t)
	comet := fmt.Sprintf("http://127.0.0.1:%d", cometPort)
	siteDir := t.TempDir()
	page := strings.NewReplacer(
		"{COMET}", comet,
		"{BARE}", fmt.Sprintf("http://127.0.0.1:%d", barePort),
		"{HOSTILE}", url.PathEscape(quoteHostileID),
	).Replace(quotePage)
	if err := os.WriteFile(filepath.Join(siteDir, "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	const cometBlock = `comet {
		hub quote_test
		quote_json
		enable_status
	}`
	startCaddy(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	root * %q
	file_server
}
http://127.0.0.1:%d {
	%s
}
http://127.0.0.1:%d {
	header {
		-X-Content-Type-Options
		defer
	}
	%s
}
`, pagePort, siteDir, cometPort, cometBlock, barePort, cometBlock))
	if t.Failed() {
		t.FailNow()
	}
	registerChannel(t, comet, "news")
	registerChannel(t, comet, quoteHostileID)
	publish(t, comet, "news", quoteHostile)
	publish(t, comet, quoteHostileID, quoteHostile)
	if r := get(t, fmt.Sprintf("http://127.0.0.1:%d/status.json", barePort)); r.header.Get("X-Content-Type-Options") != "" {
		t.Fatalf("the bare site still sends X-Content-Type-Options: %q", r.header.Get("X-Content-Type-Options"))
	}

	tab := browserTab(t, chromium)
	p := &browserTabState{t: t, ctx: tab}
	p.do("loading the page", chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pagePort)))
	p.waitFor("every include to load or fail", `done === 7`)
	if got := pageValue[string](p, `String(control)`); got != quoteHostile {
		t.Fatalf("the JSON-P control got %q, want %q: the page's includes did not run as the test assumes", got, quoteHostile)
	}
	if pwned := pageValue[string](p, `String(window.pwned) + ' ' + String(window.pwnedByID) + ' ' + document.title`); pwned != "undefined undefined quote test" {
		t.Fatalf("a quoted .json reply ran as script: window.pwned, window.pwnedByID, title = %s", pwned)
	}
}
