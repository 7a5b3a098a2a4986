package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// crossSitePage tries every call a page can make on a visitor's behalf
// against the admin route of docs/security.md of the hub at {HUB}: a form POST that
// publishes and one that registers a channel (each into a frame), a fetch
// POST that publishes in no-cors and in cors mode, and a <script> that
// loads status.jsonp. attack() starts them; done records how each ended,
// and leaked what the JSON-P callback was given, if it ran.
const crossSitePage = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>caddy-comet cross-site test</title></head>
<body>
<iframe name="publishSink"></iframe>
<iframe name="manageSink"></iframe>
<form id="publish" method="post" action="{HUB}/comet-admin/channels/room.json" target="publishSink">
<input name="content">
</form>
<form id="manage" method="post" action="{HUB}/comet-admin/channels.json" target="manageSink">
<input name="channel_id">
</form>
<script>
var done = {}, leaked = null;
function _JSONP_x(reply) { leaked = reply; }
function attack() {
	var from = location.origin, admin = '{HUB}/comet-admin';
	['publish', 'manage'].forEach(function (name) {
		document.getElementsByName(name + 'Sink')[0].onload = function () { done[name + 'Form'] = 'loaded'; };
	});
	document.querySelector('#publish input').value = 'form from ' + from;
	document.querySelector('#manage input').value = 'form-' + location.host;
	document.getElementById('publish').submit();
	document.getElementById('manage').submit();
	['no-cors', 'cors'].forEach(function (mode) {
		fetch(admin + '/channels/room.json', {method: 'POST', mode: mode,
				body: new URLSearchParams({content: mode + ' fetch from ' + from})})
			.then(function (res) { done[mode] = 'ok ' + res.status; }, function () { done[mode] = 'error'; });
	});
	var s = document.createElement('script');
	s.onload = function () { done.script = 'loaded'; };
	s.onerror = function () { done.script = 'error'; };
	s.src = admin + '/status.jsonp?cb=_JSONP_x';
	document.head.appendChild(s);
}
</script>
</body>
</html>
`

// TestBrowserCrossSite runs the admin route of docs/security.md (remote_ip lets in
// 127.0.0.1, the address of the browser on the admin's own machine) in
// Chromium. Pages of another site (http://127.0.0.1:A, cross-site to
// http://localhost:B) and of another origin of the same site
// (http://localhost:A) try to publish, register a channel and read the
// status through the admin's browser: the hub is left as it was and the
// status callback never runs. The same page served by the hub's own site
// does all of it, and so does Go's client, which sends no browser headers.
func TestBrowserCrossSite(t *testing.T) {
	chromium := browserChromium(t)
	attackerPort, hubPort := freeport.Get(t), freeport.Get(t)
	hubOrigin := fmt.Sprintf("http://localhost:%d", hubPort)
	page := strings.ReplaceAll(crossSitePage, "{HUB}", hubOrigin)
	attackerDir, hubDir := t.TempDir(), t.TempDir()
	for _, dir := range []string{attackerDir, hubDir} {
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// bind: the browser reaches localhost over 127.0.0.1, which the
	// doc's remote_ip matcher lets in, and not over ::1.
	hubSite := readmeAdminSite(t, hubOrigin, fmt.Sprintf(`
	bind 127.0.0.1
	handle {
		root * %q
		file_server
	}
`, hubDir))
	startCaddy(t, hubSite+fmt.Sprintf(`
http://127.0.0.1:%[1]d, http://localhost:%[1]d {
	bind 127.0.0.1
	root * %[2]q
	file_server
}
`, attackerPort, attackerDir))
	if t.Failed() {
		t.FailNow()
	}

	// The back end, from Go: no browser headers.
	admin := hubOrigin + "/comet-admin"
	registerChannel(t, admin, "room")
	registerChannel(t, admin, "inbox", "use_sessions", "1")
	registerClient(t, admin, "client-42")
	publish(t, admin, "room", "hello from the back end")
	before := crossSiteState(t, hubOrigin)

	tab := &browserTabState{t: t, ctx: browserTab(t, chromium)}
	attack := func(origin string) map[string]string {
		t.Helper()
		tab.do("loading "+origin, chromedp.Navigate(origin+"/"))
		tab.do("attacking from "+origin, chromedp.Evaluate[chromedp.Void](`attack()`))
		tab.waitFor("every call from "+origin+" to end",
			`['publishForm', 'manageForm', 'no-cors', 'cors', 'script'].every(function (k) { return done[k]; })`)
		return pageValue[map[string]string](tab, `done`)
	}

	for _, origin := range []string{
		fmt.Sprintf("http://127.0.0.1:%d", attackerPort), // another site
		fmt.Sprintf("http://localhost:%d", attackerPort), // the same site, another origin
	} {
		done := attack(origin)
		if done["script"] != "error" || tab.int(`leaked === null ? 0 : 1`) != 0 {
			t.Errorf("from %s: status.jsonp's <script> %s and its callback got %s; want it refused",
				origin, done["script"], pageValue[string](tab, `JSON.stringify(leaked)`))
		}
		if after := crossSiteState(t, hubOrigin); after != before {
			t.Fatalf("a page on %s changed the hub (calls ended %v):\nbefore %s\nafter  %s", origin, done, before, after)
		}
	}

	// The same page on the hub's own site.
	done := attack(hubOrigin)
	if done["script"] != "loaded" || done["no-cors"] != "ok 200" || done["cors"] != "ok 200" {
		t.Fatalf("from the hub's own site, the calls ended %v; want the script loaded and both fetches answered", done)
	}
	var clients []string
	if err := json.Unmarshal([]byte(pageValue[string](tab, `JSON.stringify(leaked.status.clients)`)), &clients); err != nil ||
		!slices.Contains(clients, "client-42") {
		t.Fatalf("from the hub's own site, status.jsonp's callback got clients %v (%v); want client-42", clients, err)
	}
	rep := mustCode(t, read(t, hubOrigin+"/comet", "room", 0), 200, 1, "")
	var got []string
	for _, m := range rep.Messages["room"] {
		got = append(got, m.Content)
	}
	want := []string{"hello from the back end", "form from " + hubOrigin, "no-cors fetch from " + hubOrigin, "cors fetch from " + hubOrigin}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("room holds %q, want %q", got, want)
	}
	if id := "form-" + strings.TrimPrefix(hubOrigin, "http://"); !strings.Contains(crossSiteState(t, hubOrigin), `"`+id+`"`) {
		t.Fatalf("from the hub's own site, the form did not register channel %s: %s", id, crossSiteState(t, hubOrigin))
	}
}
