package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const base = "http://127.0.0.1:9080"

// apiSites serves one hub in several routes, each showing one feature.
const apiSites = `
http://127.0.0.1:9080 {
	handle_path /short/* {
		comet {
			hub short
			http_timeout 1
			enable_status
		}
	}
	handle_path /limited/* {
		comet {
			hub limited
			max_held_connections 2
			max_channels_per_read 3
			max_message_size 100
			enable_status
		}
	}
	handle_path /quoted/* {
		comet {
			hub api
			quote_json
		}
	}
	handle_path /public/* {
		comet {
			hub api
			allow subscribe
		}
	}
	handle {
		comet {
			hub api
			http_timeout 20s
			enable_status
		}
		respond "fallback" 404
	}
}
`

func TestAPIRoundTrip(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "rt-a")
	registerChannel(t, base, "rt-b")
	before := time.Now()
	id1 := publish(t, base, "rt-a", "first")
	id2 := publish(t, base, "rt-a", "second <script>")
	if id2 <= id1 || id1 < before.UnixMicro()/10 {
		t.Fatalf("ids %d, %d: want increasing and seeded from the clock (>= %d)", id1, id2, before.UnixMicro()/10)
	}

	r := read(t, base, "rt-a|rt-b", 0)
	rep := mustCode(t, r, 200, 1, "")
	if rep.LastID < id2 || rep.Since != 0 {
		t.Fatalf("since %d last_id %d, want 0 and >= %d", rep.Since, rep.LastID, id2)
	}
	got := rep.Messages["rt-a"]
	if len(got) != 2 || got[0].Content != "first" || got[1].Content != "second <script>" || got[0].ID != id1 || got[1].ID != id2 {
		t.Fatalf("messages %+v", rep.Messages)
	}
	if b, ok := rep.Messages["rt-b"]; !ok || len(b) != 0 {
		t.Fatalf("rt-b: want an empty array, got %v (present %v)", b, ok)
	}
	if strings.Contains(r.body, "<script>") {
		t.Fatalf("raw '<' in reply: %s", r.body)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", r.header.Get("Content-Type"))
	}
	if cc := r.header.Get("Cache-Control"); !strings.HasPrefix(cc, "private, must-revalidate") || r.header.Get("Expires") == "" {
		t.Fatalf("cache headers of a reply with messages: %q, Expires %q", cc, r.header.Get("Expires"))
	}

	// Continuing from last_id misses nothing and repeats nothing.
	id3 := publish(t, base, "rt-b", "third")
	rep = mustCode(t, read(t, base, "rt-a|rt-b", rep.LastID), 200, 1, "")
	if len(rep.Messages["rt-a"]) != 0 || len(rep.Messages["rt-b"]) != 1 || rep.Messages["rt-b"][0].ID != id3 {
		t.Fatalf("continuation: %+v", rep.Messages)
	}
}

func TestAPIJSONP(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "jp")
	publish(t, base, "jp", "hello")

	r := get(t, base+"/channels/jp.jsonp?since=0")
	if !strings.HasPrefix(r.body, "_JSONP_comet_cb({") || !strings.HasSuffix(r.body, "});") {
		t.Fatalf("default callback: %q", r.body)
	}
	if r.header.Get("Content-Type") != "application/javascript; charset=utf-8" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", r.header)
	}
	r = get(t, base+"/channels/jp.jsonp?since=0&cb=_JSONP_7")
	if !strings.HasPrefix(r.body, "_JSONP_7({") {
		t.Fatalf("named callback: %q", r.body)
	}
	// A refused callback name gets the original's body with 400, before
	// anything is done: a curl user sees the error, a <script> fails.
	for _, cb := range []string{"alert", "_JSONP_x;alert(1)", "_JSONP_" + strings.Repeat("a", 122)} {
		r = get(t, base+"/channels/jp.jsonp?since=0&cb="+url.QueryEscape(cb))
		if r.status != 400 || r.body != "/* invalid JSONP callback name */" {
			t.Fatalf("callback %q: HTTP %d %q, want 400 and the original's comment", cb, r.status, r.body)
		}
	}
	r = post(t, base+"/channels/jp.jsonp?cb=alert", url.Values{"content": {"not published"}})
	if r.status != 400 || r.body != "/* invalid JSONP callback name */" {
		t.Fatalf("publish with a refused callback: HTTP %d %q", r.status, r.body)
	}
	if m := mustCode(t, read(t, base, "jp", 0), 200, 1, "").Messages["jp"]; len(m) != 1 || m[0].Content != "hello" {
		t.Fatalf("a publish refused for its callback name published: %+v", m)
	}
	// The longest name accepted.
	if r = get(t, base+"/channels/jp.jsonp?since=0&cb=_JSONP_"+strings.Repeat("a", 121)); r.status != 200 || !strings.HasPrefix(r.body, "_JSONP_aaa") {
		t.Fatalf("a callback name of 128 bytes: HTTP %d %q", r.status, r.body)
	}
	// Errors come through the callback too, with status 200 for <script>.
	r = get(t, base+"/channels/nope-jp.jsonp?cb=_JSONP_e")
	if r.status != 200 || r.body != `_JSONP_e({"return_code":-2,"error_message":"No valid channels"});` {
		t.Fatalf("JSON-P error: %d %q", r.status, r.body)
	}
}

func TestAPIQuotedJSON(t *testing.T) {
	startCaddy(t, apiSites)
	r := post(t, base+"/quoted/channels.json", url.Values{"channel_id": {"quoted"}})
	if r.body != `/*-secure- {"channel_id":"quoted","return_code":1,"error_message":""} */` {
		t.Fatalf("quoted: %q", r.body)
	}
}

func TestAPIErrors(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "err-open")
	registerChannel(t, base, "err-sessions", "use_sessions", "1")
	registerClient(t, base, "err-client")

	long := strings.Repeat("x", 257)
	tests := []struct {
		name    string
		r       func() response
		status  int
		code    int
		message string
	}{
		{"missing channel id", func() response { return post(t, base+"/channels.json", url.Values{}) }, 200, -1, "Missing channel id"},
		{"channel exists", func() response { return post(t, base+"/channels.json", url.Values{"channel_id": {"err-open"}}) }, 200, -2, "Channel already exists"},
		{"bad max messages", func() response {
			return post(t, base+"/channels.json", url.Values{"channel_id": {"err-x"}, "max_messages": {"0"}})
		}, 200, -1, "Invalid max messages value"},
		{"bad use_sessions", func() response {
			return post(t, base+"/channels.json", url.Values{"channel_id": {"err-x"}, "use_sessions": {"maybe"}})
		}, 200, -1, "Invalid use_sessions value"},
		{"id too long", func() response { return post(t, base+"/channels.json", url.Values{"channel_id": {long}}) }, 200, -1, "Invalid channel id: longer than 256 bytes"},
		{"id with control", func() response { return post(t, base+"/channels.json", url.Values{"channel_id": {"a\x01b"}}) }, 200, -1, "Invalid channel id: contains a control character"},
		{"id with bar", func() response { return post(t, base+"/channels.json", url.Values{"channel_id": {"a|b"}}) }, 200, -1, "Invalid channel id: contains '|'"},
		{"publish unknown", func() response { return post(t, base+"/channels/err-nope.json", url.Values{"content": {"x"}}) }, 200, -2, "Nonexistent channel"},
		{"publish no content", func() response { return post(t, base+"/channels/err-open.json", url.Values{}) }, 200, -1, "Missing content"},
		{"missing client id", func() response { return post(t, base+"/clients.json", url.Values{}) }, 200, -1, "Missing client id"},
		{"client exists", func() response { return post(t, base+"/clients.json", url.Values{"client_id": {"err-client"}}) }, 200, -2, "Client already exists"},
		{"unknown format", func() response { return get(t, base+"/channels/err-open.xml") }, 200, -1, "Unknown output format"},
		{"unknown format collection", func() response { return post(t, base+"/channels.xml", url.Values{"channel_id": {"x"}}) }, 200, -1, "Unknown output format"},
		{"no channels", func() response { return get(t, base+"/channels/.json") }, 200, -2, "No channels"},
		{"no valid channels", func() response { return read(t, base, "err-nope|err-nope2", 0) }, 200, -2, "No valid channels"},
		{"session channel without client", func() response { return read(t, base, "err-sessions", 0) }, 200, -2, "No valid channels"},
		{"unregistered client", func() response { return read(t, base, "err-open", 0, "client_id", "err-stranger") }, 200, -3, "Unregistered client_id"},
		{"empty client id", func() response { return read(t, base, "err-open", 0, "client_id", "") }, 200, -1, "Missing client_id"},
		{"method", func() response { return do(t, http.MethodPut, base+"/channels/err-open.json", nil) }, 405, -1, "Method not allowed: use GET, POST, DELETE"},
		{"forbidden publish", func() response {
			return post(t, base+"/public/channels/err-open.json", url.Values{"content": {"x"}})
		}, 403, -1, "Operation not allowed on this route: publish"},
		{"forbidden status", func() response { return get(t, base+"/public/status.json") }, 403, -1, "Operation not allowed on this route: status"},
		{"status disabled", func() response { return get(t, base+"/quoted/status.json") }, 200, -1, "Status disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r()
			mustCode(t, r, tt.status, tt.code, tt.message)
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", r.header.Get("Cache-Control"))
			}
		})
	}
	if r := do(t, http.MethodGet, base+"/clients.json", nil); r.header.Get("Allow") != "POST" || r.status != 405 {
		t.Fatalf("GET /clients.json: %d Allow %q", r.status, r.header.Get("Allow"))
	}
}

func TestAPISessions(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "ses", "use_sessions", "yes")
	registerClient(t, base, "ses-client")
	publish(t, base, "ses", "private")
	rep := mustCode(t, read(t, base, "ses", 0, "client_id", "ses-client"), 200, 1, "")
	if len(rep.Messages["ses"]) != 1 {
		t.Fatalf("session read: %+v", rep.Messages)
	}
	var st struct {
		Channels []struct {
			ID      string   `json:"channel_id"`
			Clients []string `json:"clients"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(get(t, base+"/status.json").json(t).Status, &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range st.Channels {
		if c.ID == "ses" {
			found = len(c.Clients) == 1 && c.Clients[0] == "ses-client"
		}
	}
	if !found {
		t.Fatalf("status does not record ses-client on ses: %+v", st)
	}
}

func TestAPISince(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "since")
	id := publish(t, base, "since", "one")
	// A since that is not a number counts as 0.
	rep := mustCode(t, get(t, base+"/channels/since.json?since=abc"), 200, 1, "")
	if len(rep.Messages["since"]) != 1 || rep.Since != 0 {
		t.Fatalf("non-integer since: %+v", rep)
	}
	// A since beyond the newest id is clamped to it: the read waits for the
	// next message and gets it.
	done := make(chan reply, 1)
	go func() { done <- read(t, base, "since", 1<<52).json(t) }()
	heldReads(t, base, 1)
	id2 := publish(t, base, "since", "two")
	rep = <-done
	if rep.Since < id || rep.Since >= id2 || len(rep.Messages["since"]) != 1 || rep.Messages["since"][0].ID != id2 {
		t.Fatalf("clamped since: %+v (ids %d, %d)", rep, id, id2)
	}
}

func TestAPIHeldReads(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "held")
	id0 := publish(t, base, "held", "zero")

	const readers = 3
	replies := make(chan response, readers)
	for range readers {
		go func() { replies <- read(t, base, "held", id0) }()
	}
	heldReads(t, base, readers)
	id1 := publish(t, base, "held", "one")
	for range readers {
		r := <-replies
		rep := mustCode(t, r, 200, 1, "")
		if m := rep.Messages["held"]; len(m) != 1 || m[0].ID != id1 || m[0].Content != "one" || rep.LastID != id1 {
			t.Fatalf("released read: %s", r.body)
		}
		if !strings.HasPrefix(r.header.Get("Cache-Control"), "private") {
			t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
		}
	}
}

func TestAPIDeleteReleasesHeldReads(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "del")
	id := publish(t, base, "del", "x")
	done := make(chan response, 1)
	go func() { done <- read(t, base, "del", id) }()
	heldReads(t, base, 1)

	rep := mustCode(t, do(t, http.MethodDelete, base+"/channels/del.json", nil), 200, 2, "")
	if rep.Removed == nil || !*rep.Removed || rep.ChannelID != "del" {
		t.Fatalf("delete: %+v", rep)
	}
	r := <-done
	if !strings.Contains(r.body, `"messages":{}`) || r.json(t).LastID < id {
		t.Fatalf("held read after delete: %s", r.body)
	}
	rep = mustCode(t, do(t, http.MethodDelete, base+"/channels/del.json", nil), 200, 1, "")
	if rep.Removed == nil || *rep.Removed {
		t.Fatalf("second delete: %+v", rep)
	}
	mustCode(t, post(t, base+"/channels/del.json", url.Values{"content": {"x"}}), 200, -2, "Nonexistent channel")
}

func TestAPITimeout(t *testing.T) {
	startCaddy(t, apiSites)
	short := base + "/short"
	registerChannel(t, short, "to")
	id := publish(t, short, "to", "x")
	r := read(t, short, "to", id)
	rep := mustCode(t, r, 200, 1, "")
	if !strings.Contains(r.body, `"messages":{}`) || rep.LastID != id || rep.Since != id {
		t.Fatalf("timed-out read: %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
}

func TestAPILimits(t *testing.T) {
	startCaddy(t, apiSites)
	lim := base + "/limited"
	registerChannel(t, lim, "lim")

	// max_message_size 100: 100 bytes pass, 101 do not.
	publish(t, lim, "lim", strings.Repeat("a", 100))
	mustCode(t, post(t, lim+"/channels/lim.json", url.Values{"content": {strings.Repeat("a", 101)}}), 413, -1, "Message too large: over 100 bytes")
	r := post(t, lim+"/channels/lim.json", url.Values{"content": {strings.Repeat("a", 5000)}})
	if r.status != 413 || !strings.HasPrefix(r.json(t).ErrorMessage, "Message too large") {
		t.Fatalf("oversized body: %d %s", r.status, r.body)
	}

	// max_channels_per_read 3.
	registerChannel(t, lim, "lim2")
	registerChannel(t, lim, "lim3")
	mustCode(t, read(t, lim, "lim|lim2|lim3", 0), 200, 1, "")
	mustCode(t, read(t, lim, "lim|lim2|lim3|lim4", 0), 200, -1, "Too many channels in one read: at most 3")

	// max_held_connections 2.
	id := publish(t, lim, "lim", "latest")
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rep := read(t, lim, "lim", id).json(t); rep.ReturnCode != 1 {
				t.Errorf("held read: %+v", rep)
			}
		}()
	}
	heldReads(t, lim, 2)
	mustCode(t, read(t, lim, "lim", id), 503, -5, "Too many held connections")
	publish(t, lim, "lim", "release")
	wg.Wait()
}

func TestAPIPassesOtherRequests(t *testing.T) {
	startCaddy(t, apiSites)
	for _, r := range []response{
		get(t, base+"/index.html"),
		get(t, base+"/channelsfoo"),
		do(t, http.MethodOptions, base+"/channels.json", nil),
	} {
		if r.status != 404 || r.body != "fallback" {
			t.Fatalf("want the next handler's 404 fallback, got %d %q", r.status, r.body)
		}
	}
}

func TestAPIClientScripts(t *testing.T) {
	startCaddy(t, apiSites)
	for _, name := range []string{"simple-comet.js", "simple-comet.min.js", "simple-comet-jsonp.min.js", "simple-comet-shared.min.js"} {
		r := get(t, base+"/public/"+name)
		etag := r.header.Get("ETag")
		if r.status != 200 || !strings.Contains(r.body, "SimpleComet") || etag == "" ||
			r.header.Get("Content-Type") != "application/javascript; charset=utf-8" {
			t.Fatalf("%s: %d %v", name, r.status, r.header)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/public/"+name, nil)
		req.Header.Set("If-None-Match", etag)
		res, err := longPoll.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with If-None-Match: %d", name, res.StatusCode)
		}
	}
}

func TestAPIMetrics(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "metrics")
	publish(t, base, "metrics", "x")
	r := get(t, "http://localhost:2999/metrics")
	for _, want := range []string{
		`caddy_comet_held_reads{hub="api"}`,
		`caddy_comet_channels{hub="api"}`,
		`caddy_comet_messages_published_total{hub="api"}`,
		`caddy_comet_errors_total{code="-2",hub="api"}`,
		`caddy_comet_store_duration_seconds_count{hub="api"}`,
	} {
		if !strings.Contains(r.body, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

func TestConflictingHubSettings(t *testing.T) {
	startCaddy(t, apiSites)
	err := loadCaddyfile(`
http://127.0.0.1:9080 {
	handle_path /a/* {
		comet {
			hub clash
			http_timeout 10s
		}
	}
	comet {
		hub clash
		http_timeout 20s
	}
}
`)
	if err == nil || !strings.Contains(err.Error(), `hub \"clash\": http_timeout differs between routes (10s and 20s)`) {
		t.Fatalf("want a config error naming http_timeout, got %v", err)
	}
	// The running configuration is untouched.
	registerChannel(t, base, fmt.Sprintf("after-clash-%d", time.Now().UnixNano()))
}
