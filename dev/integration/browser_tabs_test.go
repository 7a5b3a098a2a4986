package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// chatTabs is how many tabs TestBrowserChatTabs opens: more than the 6
// connections per host that a browser opens over HTTP/1.1.
const chatTabs = 10

// TestBrowserChatTabs runs examples/chat, which loads the shared client, in
// ten tabs of one browser over HTTP/1.1 (the test's sites are plain HTTP):
// the hub holds one read for all of them, every tab shows every message
// once and in order, the room's history included, and every tab can
// publish through its form. Then the tab that reads for all closes: with
// messages published at once, while no tab reads, and after, the other
// nine lose and repeat nothing, and can still publish.
func TestBrowserChatTabs(t *testing.T) {
	chromium := browserChromium(t)
	site, port := exampleSite(t, "chat", "http://127.0.0.1:4090")
	startCaddy(t, site)
	if t.Failed() {
		t.FailNow()
	}
	page := fmt.Sprintf("http://127.0.0.1:%d/", port)
	comet := page + "comet"
	registerChannel(t, comet, "chat")
	publish(t, comet, "chat", "go\tbefore the tabs")

	// The browser's first tab stays blank: closing it would stop the
	// browser. The chat tabs are the others, in the same browser context,
	// so they share the origin's storage, locks and broadcast channels.
	browser := browserTab(t, chromium)
	tabs := make([]*browserTabState, chatTabs)
	closeTabs := make([]context.CancelFunc, chatTabs)
	for i := range tabs {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("opening tab %d: %v", i, err)
		}
		tabs[i], closeTabs[i] = &browserTabState{t: t, ctx: ctx}, cancel
		tabs[i].do("opening the chat", chromedp.Navigate(page))
		tabs[i].waitFor("the history", chatLogHas("before the tabs"))
		chatSharers(tabs[i], i+1)
		if i == 0 {
			// The first tab reads for all as long as it is open.
			eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)
		}
	}
	eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)

	for i, tab := range tabs {
		chatSay(tab, fmt.Sprint("tab", i), fmt.Sprint("hello from tab ", i))
	}
	chatCheck(t, comet, tabs, 1+chatTabs)

	// The reading tab goes. Messages published straight away reach the
	// hub while no tab, or the next one, reads; then a tab takes over.
	closeTabs[0]()
	tabs = tabs[1:]
	publish(t, comet, "chat", "go\tduring the hand-over 1")
	publish(t, comet, "chat", "go\tduring the hand-over 2")
	chatCheck(t, comet, tabs, 1+chatTabs+2)
	eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)
	publish(t, comet, "chat", "go\tafter the hand-over")
	for i, tab := range tabs {
		chatSay(tab, fmt.Sprint("tab", i+1), fmt.Sprint("still here, tab ", i+1))
	}
	chatCheck(t, comet, tabs, 1+chatTabs+2+1+len(tabs))
	eventuallyMetric(t, `caddy_comet_held_reads{hub="default"}`, 1)
}

// chatLogHas is a condition on the chat page: its log shows text.
func chatLogHas(text string) string {
	return fmt.Sprintf(`[].some.call(document.querySelectorAll('#log li'), function (li) { return li.textContent.indexOf(%q) >= 0; })`, text)
}

// chatSharers waits until n tabs take part in the chat page's subscription:
// the one that holds its lock and reads, and those that wait for the lock,
// which receive from it. A tab asks for the lock once its page has started
// the subscription.
func chatSharers(tab *browserTabState, n int) {
	tab.t.Helper()
	deadline := time.Now().Add(browserStep)
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, browserStep)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[int](`navigator.locks.query().then(function (s) {
			return s.held.concat(s.pending).filter(function (l) { return l.name.indexOf('SimpleComet ') === 0; }).length;
		})`, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			tab.t.Fatalf("asking for the page's locks: %v", err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			tab.t.Fatalf("%d tabs share the chat's subscription, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}

// chatSay sends a message through a chat page's form.
func chatSay(tab *browserTabState, name, text string) {
	tab.t.Helper()
	tab.do("sending "+text, chromedp.Steps(
		chromedp.SetValue("#name", name),
		chromedp.SetValue("#text", text),
		chromedp.Click("#say button"),
	))
}

// chatCheck waits until the hub holds n messages of the chat and every tab
// shows them all, then checks that each shows them once and in the hub's
// order.
func chatCheck(t *testing.T, comet string, tabs []*browserTabState, n int) {
	t.Helper()
	// The test does not see the answers to the forms' publishes: wait
	// until the hub has them.
	var want []string
	deadline := time.Now().Add(browserStep)
	for len(want) < n {
		want = want[:0]
		for _, m := range read(t, comet, "chat", 0).json(t).Messages["chat"] {
			want = append(want, m.Content)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub holds %d messages of the chat, want %d", len(want), n)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
	for i, tab := range tabs {
		tab.waitFor(fmt.Sprintf("tab %d to show %d messages", i, len(want)),
			fmt.Sprintf(`document.querySelectorAll('#log li').length >= %d`, len(want)))
		got := pageValue[[]string](tab, `[].map.call(document.querySelectorAll('#log li'), function (li) {
			return li.querySelector('b').textContent + '\t' + li.lastChild.textContent;
		})`)
		if !slices.Equal(got, want) {
			t.Fatalf("tab %d shows\n%s\nwant the hub's\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// Where the browser lacks BroadcastChannel (or Web Locks), the shared client
// is the client: each tab reads for itself, and gets every message.
func TestBrowserSharedFallback(t *testing.T) {
	chromium := browserChromium(t)
	dir := t.TempDir()
	page := strings.NewReplacer("{SCRIPT}", "simple-comet-shared.min.js", "{OLD}", "false",
		`<script src=`, `<script>window.BroadcastChannel = undefined;</script><script src=`).Replace(transportPage)
	if err := os.WriteFile(filepath.Join(dir, "unshared.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeport.Get(t)
	startCaddy(t, transportSite(port, dir, "2s"))
	if t.Failed() {
		t.FailNow()
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	registerChannel(t, base+"/comet", "room")
	first := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	tabs := []*browserTabState{first, {t: t, ctx: browserNewTab(t, first.ctx)}}
	for i, tab := range tabs {
		tab.do("opening the page", chromedp.Navigate(base+"/unshared.html"))
		eventuallyMetric(t, `caddy_comet_held_reads{hub="transports"}`, float64(i+1))
	}
	publish(t, base+"/comet", "room", "m0")
	publish(t, base+"/comet", "room", "m1")
	for _, tab := range tabs {
		tab.waitFor("the messages", `got.join() === 'm0,m1'`)
	}
}
