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

// errorsPage loads the client the test names ({SCRIPT}) with
// SimpleComet.transport set to {TRANSPORT}, and lets the test subscribe by
// name: what each subscription's callback gets goes to got[name], what its
// error callback gets to errors[name].
const errorsPage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet errors</title></head>
<body>
<script src="/comet/{SCRIPT}"></script>
<script>
var got = {}, errors = {};
SimpleComet.transport = {TRANSPORT};
function sub(name, url) {
	got[name] = [];
	errors[name] = [];
	SimpleComet.subscribe(url, function (reply) {
		var list = reply.messages.room || [];
		for (var i = 0; i < list.length; i++) got[name].push(list[i].content);
	}, undefined, function (error) {
		errors[name].push({return_code: error.return_code, error_message: error.error_message});
	});
}
window.onload = SimpleComet.start;
</script>
</body>
</html>
`

// errorsSite serves the pages, the comet API on /comet/ and the same hub
// behind a jwt block on /locked/, which refuses a read without a token
// with 403.
func errorsSite(port int, dir string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	handle_path /comet/* {
		comet {
			hub errors
			http_timeout 2s
		}
	}
	handle_path /locked/* {
		comet {
			hub errors
			http_timeout 2s
			jwt {
				key {env.COMET_JWT_KEY}
			}
		}
	}
	handle {
		root * %q
		file_server
	}
}
`, port, dir)
}

// The error callback hears what goes wrong, on each transport: the -2 of a
// channel that does not exist (through JSON-P, which a stream that fails
// before its first event falls back to; a page kept to streams cannot see
// the reply and gets return_code 0), a 403 and a server that is not there
// ({return_code: 0}, as a page cannot see a script's or a stream's status).
// The subscriptions go on retrying: once the channel exists, each gets its
// messages.
func TestBrowserErrorCallback(t *testing.T) {
	chromium := browserChromium(t)
	t.Setenv("COMET_JWT_KEY", jwtTestKey)
	dir := t.TempDir()
	pages := map[string]*strings.Replacer{
		"streams":      strings.NewReplacer("{SCRIPT}", "simple-comet.min.js", "{TRANSPORT}", "undefined"),
		"streams-only": strings.NewReplacer("{SCRIPT}", "simple-comet.min.js", "{TRANSPORT}", "'sse'"),
		"jsonp":        strings.NewReplacer("{SCRIPT}", "simple-comet-jsonp.min.js", "{TRANSPORT}", "undefined"),
	}
	for name, r := range pages {
		if err := os.WriteFile(filepath.Join(dir, name+".html"), []byte(r.Replace(errorsPage)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freeport.Get(t)
	startCaddy(t, errorsSite(port, dir))
	if t.Failed() {
		t.FailNow()
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Nothing listens here: the test holds the port, so no one else takes it.
	down := fmt.Sprintf("http://127.0.0.1:%d/channels/room.jsonp", freeport.Get(t))

	// What each page's subscriptions must hear, by subscription: the
	// return_code of their first error.
	nowhere := map[string]int{"streams": -2, "streams-only": 0, "jsonp": -2}
	var tabs = map[string]*browserTabState{}
	first := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	for name := range pages {
		tab := first
		if len(tabs) > 0 {
			tab = &browserTabState{t: t, ctx: browserNewTab(t, first.ctx)}
		}
		tabs[name] = tab
		tab.do("opening "+name, chromedp.Navigate(base+"/"+name+".html"))
		tab.waitFor("the page to load", `document.readyState === 'complete'`)
		tab.do("subscribing", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`sub('nowhere', '/comet/channels/room.jsonp'); sub('locked', '/locked/channels/room.jsonp'); sub('down', %s)`,
			jsString(down))))
	}
	for name, tab := range tabs {
		for sub, code := range map[string]int{"nowhere": nowhere[name], "locked": 0, "down": 0} {
			tab.waitFor(name+" page: an error for "+sub, `errors.`+sub+`.length > 0`)
			e := pageValue[[]reply](tab, `errors.`+sub)[0]
			switch {
			case e.ReturnCode != code:
				t.Errorf("%s page, %s: the error callback got return_code %d (%q), want %d", name, sub, e.ReturnCode, e.ErrorMessage, code)
			case code < 0 && e.ErrorMessage != "No valid channels":
				t.Errorf("%s page, %s: the error callback got error_message %q, want the reply's", name, sub, e.ErrorMessage)
			case code == 0 && e.ErrorMessage != "":
				t.Errorf("%s page, %s: a failed request's error has error_message %q, want none", name, sub, e.ErrorMessage)
			}
		}
	}

	// The subscription to the channel that did not exist keeps trying, and
	// gets the channel's messages once it does; the callback got nothing
	// before.
	for name, tab := range tabs {
		if n := tab.int(`got.nowhere.length + got.locked.length + got.down.length`); n != 0 {
			t.Fatalf("%s page: the callbacks got %d messages before there were any", name, n)
		}
	}
	registerChannel(t, base+"/comet", "room")
	publish(t, base+"/comet", "room", "at last")
	for name, tab := range tabs {
		tab.waitFor(name+" page: the message, after the errors", `got.nowhere.join() === 'at last'`)
	}
}
