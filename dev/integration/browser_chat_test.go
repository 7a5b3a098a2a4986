package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// TestBrowserChatExample runs examples/chat as a user would: two browser
// tabs on the page, one sends a message through the form, both show it.
// TestBrowserChatTabs opens ten.
// It keeps the example working as the module and the client change.
func TestBrowserChatExample(t *testing.T) {
	chromium := browserChromium(t)
	site, port := exampleSite(t, "chat", "http://127.0.0.1:4090")
	startCaddy(t, site)
	if t.Failed() {
		t.FailNow()
	}

	page := fmt.Sprintf("http://127.0.0.1:%d/", port)
	alice := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	bob := &browserTabState{t: t, ctx: browserNewTab(t, alice.ctx)}
	logHas := func(text string) string {
		return fmt.Sprintf(`[].some.call(document.querySelectorAll('#log li'), function (li) { return li.textContent.indexOf(%q) >= 0; })`, text)
	}

	// The page starts reading once its channel registration is answered.
	// The tabs share one read (the page loads the shared client): alice's
	// is the hub's one held read, and bob's page is reading when it waits
	// for the lead, so that it gets what alice says.
	for i, tab := range []*browserTabState{alice, bob} {
		tab.do("opening the chat", chromedp.Navigate(page))
		chatSharers(tab, i+1)
	}
	eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)

	say := func(tab *browserTabState, name, text string) {
		t.Helper()
		tab.do("sending "+text, chromedp.Steps(
			chromedp.SetValue("#name", name),
			chromedp.SetValue("#text", text),
			chromedp.Click("#say button"),
		))
	}
	say(alice, "alice", "hello <b>bob</b> & all")
	for _, tab := range []*browserTabState{alice, bob} {
		tab.waitFor("alice's message", logHas("alicehello <b>bob</b> & all"))
	}
	say(bob, "bob", "hi alice")
	for _, tab := range []*browserTabState{alice, bob} {
		tab.waitFor("bob's answer", logHas("bobhi alice"))
	}
	// The text field is cleared after sending, and the markup stayed text.
	if n := alice.int(`document.querySelectorAll('#log li b b').length + document.getElementById('text').value.length`); n != 0 {
		t.Errorf("after sending, the page has markup from a message or a text field not cleared (%d)", n)
	}
	// A page opened later shows the room's history.
	carol := &browserTabState{t: t, ctx: browserNewTab(t, alice.ctx)}
	carol.do("opening the chat", chromedp.Navigate(page))
	carol.waitFor("the history", logHas("alicehello <b>bob</b> & all")+" && "+logHas("bobhi alice"))
}

// exampleSite reads examples/<name>/Caddyfile as a test runs it: its own
// global options (its admin address) give way to the test Caddy's, its
// site address (addr) moves to a free port, and its root (relative to the
// repository, where the example is run from) becomes an absolute path.
func exampleSite(t *testing.T, name, addr string) (site string, port int) {
	t.Helper()
	caddyfile, err := os.ReadFile(filepath.Join(repoRoot, "examples", name, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs(filepath.Join(repoRoot, "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	_, site, ok := strings.Cut(string(caddyfile), "\n}\n")
	if !ok {
		t.Fatalf("examples/%s/Caddyfile has no global options block", name)
	}
	port = freeport.Get(t)
	for old, repl := range map[string]string{
		addr:                      fmt.Sprintf("http://127.0.0.1:%d", port),
		"root * examples/" + name: fmt.Sprintf("root * %q", dir),
	} {
		if !strings.Contains(site, old) {
			t.Fatalf("examples/%s/Caddyfile no longer has %q; update this test", name, old)
		}
		site = strings.ReplaceAll(site, old, repl)
	}
	return site, port
}

// browserNewTab opens another tab in the browser of a tab's context. Like
// the first tab, it is opened by a run without a deadline: the context of
// that first run owns the tab.
func browserNewTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return ctx
}
