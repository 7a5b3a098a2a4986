package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserSSEPage opens a plain EventSource on a channel and records what
// it gets: the contents of the messages of each event, the events' ids and
// how often the stream opened.
const browserSSEPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet EventSource test</title></head>
<body>
<script>
var got = [], ids = [], opens = 0, es = new EventSource('/channels/{CHANNEL}.sse');
es.onopen = function () { opens++; };
es.onmessage = function (e) {
	var reply = JSON.parse(e.data), list = reply.messages['{CHANNEL}'] || [], i;
	ids.push(e.lastEventId);
	for (i = 0; i < list.length; i++) got.push(list[i].content);
};
</script>
</body>
</html>
`

// browserSSESite serves the page next to the comet handler, same origin.
const browserSSESite = `
http://127.0.0.1:9080 {
	root * {DIR}
	file_server
	comet {
		hub browser-sse
		sse_heartbeat {HEARTBEAT}
	}
}
`

// A real EventSource in Chromium gets published messages in order, and
// after a reload ends its stream it reconnects by itself with
// Last-Event-ID: the messages published meanwhile arrive, none twice.
func TestBrowserEventSource(t *testing.T) {
	chromium := browserChromium(t)
	ch := fmt.Sprint("browser-sse-", time.Now().UnixNano())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(strings.ReplaceAll(browserSSEPage, "{CHANNEL}", ch)), 0o644); err != nil {
		t.Fatal(err)
	}
	site := func(heartbeat string) string {
		return strings.NewReplacer("{DIR}", dir, "{HEARTBEAT}", heartbeat).Replace(browserSSESite)
	}
	startCaddy(t, site("20s"))
	registerChannel(t, base, ch)

	tab := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	tab.do("opening the page", chromedp.Navigate(base+"/"))
	tab.waitFor("the first event", `opens === 1 && ids.length === 1`)

	var want []string
	publishSome := func(from, to int) {
		for i := from; i < to; i++ {
			content := fmt.Sprintf("message %d <b>&</b>", i)
			mustPublish(t, base, ch, content)
			want = append(want, content)
		}
	}
	publishSome(0, 3)
	tab.waitFor("three messages", `got.length >= 3`)

	// A reload ends the stream; EventSource reconnects after the retry
	// delay the server asked for (2s), and the messages published in the
	// gap come with its first event.
	if err := loadCaddyfile(site("21s")); err != nil {
		t.Fatal(err)
	}
	publishSome(3, 6)
	tab.waitFor("the reconnect and the messages published meanwhile", `opens === 2 && got.length >= 6`)
	publishSome(6, 7)
	tab.waitFor("a message after the reconnect", `got.length >= 7`)

	got := pageValue[[]string](tab, `got`)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the page got %q, want %q: each message once, in order", got, want)
	}
}
