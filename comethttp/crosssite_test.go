package comethttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/token"
)

// Every way a browser marks a request, and the limits of each: the request
// came to comet.example.com:8443.
func TestCrossSite(t *testing.T) {
	const host = "comet.example.com:8443"
	tests := []struct {
		name    string
		headers map[string][]string
		refused bool
		why     string
	}{
		{"no browser headers (curl, a back end)", nil, false, ""},

		{"Sec-Fetch-Site same-origin", map[string][]string{"Sec-Fetch-Site": {"same-origin"}}, false, ""},
		{"Sec-Fetch-Site none (typed, bookmarked)", map[string][]string{"Sec-Fetch-Site": {"none"}}, false, ""},
		{"Sec-Fetch-Site cross-site", map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, true, "Sec-Fetch-Site: cross-site"},
		{"Sec-Fetch-Site same-site", map[string][]string{"Sec-Fetch-Site": {"same-site"}}, true, "Sec-Fetch-Site: same-site"},
		// Sec-Fetch-Site decides when present, whatever Origin says.
		{"same-origin with a foreign Origin", map[string][]string{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"https://evil.example"}}, false, ""},
		{"cross-site with the site's own Origin", map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"http://" + host}}, true, "Sec-Fetch-Site: cross-site"},
		// Values no browser sends are refused, not taken for absent.
		{"Sec-Fetch-Site unknown", map[string][]string{"Sec-Fetch-Site": {"cross-origin"}}, true, "unknown Sec-Fetch-Site"},
		{"Sec-Fetch-Site in capitals", map[string][]string{"Sec-Fetch-Site": {"Same-Origin"}}, true, "unknown Sec-Fetch-Site"},
		{"Sec-Fetch-Site with a space", map[string][]string{"Sec-Fetch-Site": {"same-origin "}}, true, "unknown Sec-Fetch-Site"},

		// Without Sec-Fetch-Site (older browsers), Origin against Host.
		{"Origin of the site", map[string][]string{"Origin": {"http://" + host}}, false, ""},
		{"Origin of the site in capitals", map[string][]string{"Origin": {"http://COMET.Example.com:8443"}}, false, ""},
		// The scheme is not compared (see crossSite): TLS may end at a proxy.
		{"Origin of the site over the other scheme", map[string][]string{"Origin": {"https://" + host}}, false, ""},
		{"Origin on another port", map[string][]string{"Origin": {"http://comet.example.com:8444"}}, true, "Origin of another site"},
		{"Origin without the port", map[string][]string{"Origin": {"http://comet.example.com"}}, true, "Origin of another site"},
		{"Origin of a subdomain", map[string][]string{"Origin": {"http://www.comet.example.com:8443"}}, true, "Origin of another site"},
		{"Origin of the parent domain", map[string][]string{"Origin": {"http://example.com:8443"}}, true, "Origin of another site"},
		{"Origin of another site", map[string][]string{"Origin": {"https://evil.example"}}, true, "Origin of another site"},
		{"Origin with the host as user info", map[string][]string{"Origin": {"http://" + host + "@evil.example"}}, true, "Origin of another site"},
		{"Origin null", map[string][]string{"Origin": {"null"}}, true, "Origin: null"},
		{"Origin empty", map[string][]string{"Origin": {""}}, true, "Origin of another site"},
		{"Origin without a scheme", map[string][]string{"Origin": {host}}, true, "Origin of another site"},
		{"Origin scheme-relative", map[string][]string{"Origin": {"//" + host}}, true, "Origin of another site"},
		{"Origin of another scheme", map[string][]string{"Origin": {"chrome-extension://" + host}}, true, "Origin of another site"},
		{"Origin malformed", map[string][]string{"Origin": {"http://[::1"}}, true, "Origin of another site"},
		{"two Origins", map[string][]string{"Origin": {"http://" + host, "http://" + host}}, true, "more than one Origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://"+host+"/channels/a.json", nil)
			for name, values := range tt.headers {
				r.Header[name] = values
			}
			refused, why := crossSite(r)
			if refused != tt.refused || why != tt.why {
				t.Errorf("crossSite = %v %q, want %v %q", refused, why, tt.refused, tt.why)
			}
		})
	}
}

// An IPv6 site address compares as the Host header has it.
func TestCrossSiteIPv6Host(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://[::1]:9080/status.json", nil)
	r.Header.Set("Origin", "http://[::1]:9080")
	if refused, why := crossSite(r); refused {
		t.Errorf("the site's own IPv6 origin refused: %s", why)
	}
	r.Header.Set("Origin", "http://[::2]:9080")
	if refused, _ := crossSite(r); !refused {
		t.Error("another IPv6 origin taken")
	}
}

// crossSiteCall is a request for one operation, and how to see from the hub
// whether it ran.
type crossSiteCall struct {
	op, method, target string
	form               url.Values
	ran                func(t *testing.T, h *Handler) bool // nil: it changes nothing
}

func crossSiteCalls() []crossSiteCall {
	hasChannel := func(id string) func(*testing.T, *Handler) bool {
		return func(t *testing.T, h *Handler) bool {
			st, err := h.hub.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range st.Channels {
				if c.ID == id {
					return true
				}
			}
			return false
		}
	}
	return []crossSiteCall{
		{OpPublish, http.MethodPost, "/channels/room.json", url.Values{"content": {"forged"}}, func(t *testing.T, h *Handler) bool {
			st, err := h.hub.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return st.Counts.Messages > 0
		}},
		{OpManage, http.MethodPost, "/channels.json", url.Values{"channel_id": {"forged"}}, hasChannel("forged")},
		{OpManage, http.MethodDelete, "/channels/room.json", nil, func(t *testing.T, h *Handler) bool { return !hasChannel("room")(t, h) }},
		{OpManage, http.MethodPost, "/clients.json", url.Values{"client_id": {"forged"}}, func(t *testing.T, h *Handler) bool {
			st, err := h.hub.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return st.Counts.Clients > 0
		}},
		{OpStatus, http.MethodGet, "/status.json", nil, nil},
		{OpStatus, http.MethodGet, "/status.jsonp?cb=_JSONP_x", nil, nil},
	}
}

func (c crossSiteCall) request(headers map[string]string) *http.Request {
	var r *http.Request
	if c.form != nil {
		r = httptest.NewRequest(c.method, "http://comet.example.com"+c.target, strings.NewReader(c.form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(c.method, "http://comet.example.com"+c.target, nil)
	}
	for name, value := range headers {
		r.Header.Set(name, value)
	}
	return r
}

// crossSiteHandler is a handler on a fresh hub with the channel room,
// taking from other sites the operations given.
func crossSiteHandler(t *testing.T, allowCrossSite ...string) *Handler {
	t.Helper()
	h := testHandler(t, hub.Config{})
	h.crossSiteOK = make(map[string]bool)
	for _, op := range allowCrossSite {
		h.crossSiteOK[op] = true
	}
	if err := h.hub.RegisterChannel(context.Background(), "room", false, 0); err != nil {
		t.Fatal(err)
	}
	return h
}

// Publish, manage and status refuse a request from another site with 403
// and the API's error, in the format the path asks for, and do nothing.
func TestCrossSiteRefused(t *testing.T) {
	for _, headers := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://www.example.com"},
		{"Sec-Fetch-Site": "cross-site"}, // a <script> sends no Origin
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
	} {
		for _, c := range crossSiteCalls() {
			h := crossSiteHandler(t)
			rec, next := serve(t, h, c.request(headers))
			if next || rec.Code != http.StatusForbidden {
				t.Fatalf("%v: %s %s: next %v, %d %q; want 403", headers, c.method, c.target, next, rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if want := `"return_code":-1,"error_message":"Cross-site request refused: ` + c.op + ` from another site (`; !strings.Contains(body, want) {
				t.Errorf("%v: %s %s: %q does not hold %q", headers, c.method, c.target, body, want)
			}
			if strings.HasSuffix(c.target, "?cb=_JSONP_x") && !strings.HasPrefix(body, `_JSONP_x({"return_code":-1,`) {
				t.Errorf("%v: %s %s: %q is not the JSON-P reply", headers, c.method, c.target, body)
			}
			if strings.Contains(body, "room") || strings.Contains(body, "channels_count") {
				t.Errorf("%v: %s %s: the refusal tells of the hub: %q", headers, c.method, c.target, body)
			}
			if c.ran != nil && c.ran(t, h) {
				t.Errorf("%v: %s %s was refused but ran", headers, c.method, c.target)
			}
		}
	}
}

// The same calls from the site itself, from a typed URL, and without
// browser headers (curl, a back end) run as before.
func TestCrossSiteSameSiteServed(t *testing.T) {
	for _, headers := range []map[string]string{
		nil,
		{"Sec-Fetch-Site": "same-origin", "Origin": "http://comet.example.com"},
		{"Sec-Fetch-Site": "none"},
		{"Origin": "http://comet.example.com"},
	} {
		for _, c := range crossSiteCalls() {
			h := crossSiteHandler(t)
			rec, next := serve(t, h, c.request(headers))
			if next || rec.Code != http.StatusOK || replyCode(t, rec) < hub.CodeOK {
				t.Fatalf("%v: %s %s: next %v, %d %q; want it served", headers, c.method, c.target, next, rec.Code, rec.Body)
			}
			if c.ran != nil && !c.ran(t, h) {
				t.Errorf("%v: %s %s answered but did not run", headers, c.method, c.target)
			}
		}
	}
}

// Reads, event streams, the client scripts and the health probe are for
// every site.
func TestCrossSiteSubscribeAndHealthServed(t *testing.T) {
	h := crossSiteHandler(t)
	for _, target := range []string{
		"/channels/room.json", "/channels/room.jsonp?cb=_JSONP_r", "/simple-comet.min.js", "/health.json", "/health.jsonp",
	} {
		r := httptest.NewRequest(http.MethodGet, "http://comet.example.com"+target, nil)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Origin", "https://evil.example")
		rec, next := serve(t, h, r)
		if next || rec.Code != http.StatusOK {
			t.Errorf("GET %s from another site: next %v, %d %q; want 200", target, next, rec.Code, rec.Body)
		}
	}
}

// allow_cross_site takes the operations it lists from other sites, and
// only those.
func TestCrossSiteAllowed(t *testing.T) {
	cross := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}
	for _, allowed := range [][]string{{OpPublish}, {OpManage}, {OpStatus}, sameSiteOps} {
		for _, c := range crossSiteCalls() {
			h := crossSiteHandler(t, allowed...)
			rec, _ := serve(t, h, c.request(cross))
			taken := h.crossSiteOK[c.op]
			switch {
			case taken && (rec.Code != http.StatusOK || replyCode(t, rec) < hub.CodeOK):
				t.Errorf("allow_cross_site %v: %s %s: %d %q; want it served", allowed, c.method, c.target, rec.Code, rec.Body)
			case !taken && rec.Code != http.StatusForbidden:
				t.Errorf("allow_cross_site %v: %s %s: %d %q; want 403", allowed, c.method, c.target, rec.Code, rec.Body)
			}
		}
	}
}

// An operation the route does not serve keeps its own refusal.
func TestCrossSiteAfterAllow(t *testing.T) {
	h := crossSiteHandler(t)
	h.allowed = map[string]bool{OpSubscribe: true}
	r := httptest.NewRequest(http.MethodGet, "http://comet.example.com/status.json", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	rec, _ := serve(t, h, r)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Operation not allowed on this route: status") {
		t.Errorf("got %d %q, want the route's own 403", rec.Code, rec.Body)
	}
}

// allow_cross_site takes publish, manage and status, and nothing else.
func TestCheckAllowCrossSite(t *testing.T) {
	for _, ops := range [][]string{{"subscribe"}, {"read"}, {"publish", "health"}} {
		if err := CheckAllowCrossSite(ops, Operations()); err == nil {
			t.Errorf("allow_cross_site %v taken", ops)
		}
	}
}

// A token that covers the call does not make a request from another site
// one from this site: a token in the query can be put in a form's action.
func TestCrossSiteWithToken(t *testing.T) {
	h := tokenHandler(t, crossSiteHandler(t).state)
	signed := hsToken(t, token.Grant{Publish: []string{"*"}, Manage: true, Status: true})
	for _, cross := range []bool{true, false} {
		r := httptest.NewRequest(http.MethodPost, "http://comet.example.com/channels/room.json?token="+signed,
			strings.NewReader("content=forged"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cross {
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		rec, _ := serve(t, h, r)
		if cross && (rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Cross-site request refused")) {
			t.Errorf("from another site, with a token: %d %q, want 403 Cross-site request refused", rec.Code, rec.Body)
		}
		if !cross && (rec.Code != http.StatusOK || replyCode(t, rec) != hub.CodeOK) {
			t.Errorf("from this site, with a token: %d %q, want it published", rec.Code, rec.Body)
		}
	}
}
