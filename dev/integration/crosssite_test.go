package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// crossSitePassword is the basic_auth password of the /comet-publish/
// route of docs/security.md in these tests (the doc's hash is for a
// password nobody knows).
const crossSitePassword = "publisher password"

// securityDoc, from the repository's root, documents the admin routes these
// tests run.
const securityDoc = "docs/security.md"

// readmeAdminSite is the "Public subscribe route, protected publish route"
// Caddyfile of docs/security.md as a test runs it: its site at addr, its basic_auth hash
// one of crossSitePassword, and extra lines at the end of the site block.
func readmeAdminSite(t *testing.T, addr, extra string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, securityDoc))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := bytes.Cut(doc, []byte("\n## Public subscribe route, protected publish route\n"))
	if !ok {
		t.Fatal(securityDoc + " has no section \"Public subscribe route, protected publish route\"; update this test")
	}
	_, block, ok := bytes.Cut(section, []byte("```caddyfile\n"))
	if !ok {
		t.Fatal(securityDoc + "'s admin-route section has no caddyfile block; update this test")
	}
	block, _, _ = bytes.Cut(block, []byte("\n```"))
	site := string(block)
	hash, err := bcrypt.GenerateFromPassword([]byte(crossSitePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct {
		old *regexp.Regexp
		new string
	}{
		{regexp.MustCompile(`(?m)^comet\.example\.com \{$`), addr + " {"},
		{regexp.MustCompile(`(?m)^\t\t\tpublisher \S+$`), "\t\t\tpublisher " + string(hash)},
		{regexp.MustCompile(`\n}\n*$`), "\n" + extra + "}\n"},
	} {
		if n := len(change.old.FindAllStringIndex(site, -1)); n != 1 {
			t.Fatalf("the admin-route Caddyfile of %s matches %s %d times, want once; update this test:\n%s", securityDoc, change.old, n, site)
		}
		site = change.old.ReplaceAllLiteralString(site, change.new)
	}
	return site
}

// crossSiteHub is the hub the admin-route Caddyfile's routes share, as the tests reach it.
const crossSiteHub = "http://localhost:9080"

// crossSiteHeaders are what a browser sends for a page of another site,
// with each way of telling, and the part of the refusal that names it.
var crossSiteHeaders = []struct {
	headers map[string]string
	why     string
}{
	{map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:4000"}, "Sec-Fetch-Site: cross-site"},
	{map[string]string{"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"}, // a <script>: no Origin
	{map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://localhost:4000"}, "Sec-Fetch-Site: same-site"},
	{map[string]string{"Sec-Fetch-Site": "cross-origin"}, "unknown Sec-Fetch-Site"},
	// Browsers without Sec-Fetch-Site.
	{map[string]string{"Origin": "http://evil.example"}, "Origin of another site"},
	{map[string]string{"Origin": "http://localhost:9082"}, "Origin of another site"}, // another port
	{map[string]string{"Origin": "null"}, "Origin: null"},
}

// sameSiteHeaders are requests from the site itself, or from no page.
var sameSiteHeaders = []map[string]string{
	nil, // curl, a back end
	{"Sec-Fetch-Site": "same-origin", "Origin": crossSiteHub},
	{"Sec-Fetch-Site": "none"},
	{"Origin": crossSiteHub},
	{"Origin": "https://localhost:9080"}, // the scheme is not compared: TLS may end at a proxy
}

// crossSiteDo sends a request with headers (and basic_auth credentials for
// the /comet-publish/ route).
func crossSiteDo(t *testing.T, method, rawURL string, form url.Values, headers map[string]string) response {
	t.Helper()
	var req *http.Request
	var err error
	if form != nil {
		req, err = http.NewRequest(method, rawURL, strings.NewReader(form.Encode()))
	} else {
		req, err = http.NewRequest(method, rawURL, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if strings.Contains(rawURL, "/comet-publish/") {
		req.SetBasicAuth("publisher", crossSitePassword)
	}
	for name, value := range headers {
		req.Header.Set(name, value)
	}
	return send(t, req)
}

// crossSiteState is what the hub of the admin-route Caddyfile at site holds:
// channels, clients and messages, from the status call of a request
// without browser headers.
func crossSiteState(t *testing.T, site string) string {
	t.Helper()
	rep := mustCode(t, get(t, site+"/comet-admin/status.json"), 200, 1, "")
	var st struct {
		Channels []struct {
			ID    string `json:"channel_id"`
			Count int    `json:"messages_count"`
		} `json:"channels"`
		Clients []string `json:"clients"`
	}
	if err := json.Unmarshal(rep.Status, &st); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// TestCrossSiteAdminRoutes runs the admin routes of docs/security.md with the headers
// browsers send: publish, manage and status refuse every request a browser
// marks as coming from another site, whatever credentials it carries
// (the browser's address for remote_ip, its basic_auth credentials), and
// change nothing; the same calls without browser headers, or from the
// site itself, run; reads stay open to every site; allow_cross_site opens
// the operations it names.
func TestCrossSiteAdminRoutes(t *testing.T) {
	startCaddy(t, readmeAdminSite(t, crossSiteHub, "")+`
http://localhost:9081 {
	handle_path /partner/* {
		@backend remote_ip 127.0.0.1/32
		comet @backend {
			allow publish status
			enable_status
			allow_cross_site publish
		}
		respond 403
	}
}
`)
	admin, publisher := crossSiteHub+"/comet-admin", crossSiteHub+"/comet-publish"
	registerChannel(t, admin, "room")
	registerChannel(t, admin, "inbox", "use_sessions", "1")
	registerClient(t, admin, "client-42")
	publish(t, admin, "room", "hello") // so that reads are answered at once
	before := crossSiteState(t, crossSiteHub)

	calls := []struct {
		op, method, url string
		form            url.Values
	}{
		{"publish", http.MethodPost, admin + "/channels/room.json", url.Values{"content": {"forged"}}},
		{"publish", http.MethodPost, publisher + "/channels/room.json", url.Values{"content": {"forged"}}},
		{"manage", http.MethodPost, admin + "/channels.json", url.Values{"channel_id": {"forged"}}},
		{"manage", http.MethodPost, admin + "/clients.json", url.Values{"client_id": {"forged"}}},
		{"manage", http.MethodDelete, admin + "/channels/room.json", nil},
		{"status", http.MethodGet, admin + "/status.json", nil},
		{"status", http.MethodGet, admin + "/status.jsonp?cb=_JSONP_x", nil},
	}
	for _, cross := range crossSiteHeaders {
		for _, c := range calls {
			r := crossSiteDo(t, c.method, c.url, c.form, cross.headers)
			refused(t, r, "Cross-site request refused: "+c.op+" from another site ("+cross.why+"); see allow_cross_site")
			if strings.Contains(c.url, ".jsonp") && !strings.HasPrefix(r.body, "_JSONP_x(") {
				t.Errorf("%v: %s %s: %q is not in the path's JSON-P form", cross.headers, c.method, c.url, r.body)
			}
			if strings.Contains(r.body, "client-42") {
				t.Fatalf("%v: %s %s: the refusal carries a client id: %q", cross.headers, c.method, c.url, r.body)
			}
		}
	}
	if after := crossSiteState(t, crossSiteHub); after != before {
		t.Fatalf("refused calls changed the hub:\nbefore %s\nafter  %s", before, after)
	}

	// Reads and the client scripts are for every site.
	for _, cross := range crossSiteHeaders {
		r := crossSiteDo(t, http.MethodGet, crossSiteHub+"/comet/channels/room.jsonp?cb=_JSONP_r", nil, cross.headers)
		if r.status != http.StatusOK || !strings.HasPrefix(r.body, `_JSONP_r({"since":0,`) {
			t.Fatalf("%v: a read from another site: HTTP %d %q", cross.headers, r.status, r.body)
		}
		if r := crossSiteDo(t, http.MethodGet, crossSiteHub+"/comet/simple-comet.min.js", nil, cross.headers); r.status != http.StatusOK {
			t.Fatalf("%v: the client script from another site: HTTP %d", cross.headers, r.status)
		}
	}

	// From the site itself, a typed URL, or no page at all: served.
	for i, same := range sameSiteHeaders {
		for _, c := range calls {
			form := c.form
			if c.method == http.MethodPost && c.url == admin+"/channels.json" {
				form = url.Values{"channel_id": {"made-" + string(rune('a'+i))}}
			}
			if c.method == http.MethodPost && c.url == admin+"/clients.json" {
				form = url.Values{"client_id": {"made-" + string(rune('a'+i))}}
			}
			if c.method == http.MethodDelete {
				continue // below, once: it would take the channel the others publish to
			}
			r := crossSiteDo(t, c.method, c.url, form, same)
			if r.status != http.StatusOK {
				t.Fatalf("%v: %s %s: HTTP %d %q, want it served", same, c.method, c.url, r.status, r.body)
			}
			body := r.body
			if strings.HasPrefix(body, "_JSONP_x(") {
				body = strings.TrimSuffix(strings.TrimPrefix(body, "_JSONP_x("), ");")
				if !strings.Contains(body, `"client-42"`) {
					t.Fatalf("%v: status.jsonp from the site itself: %q, want the status", same, r.body)
				}
			}
			mustCode(t, response{status: r.status, body: body}, 200, 1, "")
		}
	}
	rep := mustCode(t, read(t, crossSiteHub+"/comet", "room", 0), 200, 1, "")
	if n := len(rep.Messages["room"]); n != 1+2*len(sameSiteHeaders) {
		t.Fatalf("room holds %d messages, want %d: hello, and two for each request from the site itself", n, 1+2*len(sameSiteHeaders))
	}
	mustCode(t, crossSiteDo(t, http.MethodDelete, admin+"/channels/room.json", nil,
		map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": crossSiteHub}), 200, 2, "")

	// allow_cross_site publish: a partner's page may publish, and still
	// not read the status.
	partner := "http://localhost:9081/partner"
	registerChannel(t, admin, "shared")
	for _, cross := range crossSiteHeaders {
		r := crossSiteDo(t, http.MethodPost, partner+"/channels/shared.json", url.Values{"content": {"from a partner"}}, cross.headers)
		mustCode(t, r, 200, 1, "")
		refused(t, crossSiteDo(t, http.MethodGet, partner+"/status.jsonp?cb=_JSONP_x", nil, cross.headers),
			"Cross-site request refused: status from another site ("+cross.why+"); see allow_cross_site")
	}
	rep = mustCode(t, read(t, crossSiteHub+"/comet", "shared", 0), 200, 1, "")
	if n := len(rep.Messages["shared"]); n != len(crossSiteHeaders) {
		t.Fatalf("shared holds %d messages, want %d", n, len(crossSiteHeaders))
	}
}
