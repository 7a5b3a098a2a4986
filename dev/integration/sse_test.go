package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseSites serves hub "sse" on routes that show what a stream meets: the
// whole API (sse_heartbeat 1500ms, past an http_timeout of 1s that streams
// do not heed), a public subscribe route, a private route, a route behind
// encode, and hubs of their own for the held-read limit and for paging.
const sseSites = `
http://127.0.0.1:9080 {
	handle_path /public/* {
		comet {
			hub sse
			allow subscribe
		}
	}
	handle_path /private/* {
		comet {
			hub sse
			allow publish manage status
		}
	}
	handle_path /gzip/* {
		encode gzip
		comet {
			hub sse
		}
	}
	handle_path /limited/* {
		comet {
			hub sse-limited
			max_held_connections 1
		}
	}
	handle_path /paged/* {
		comet {
			hub sse-paged
			max_message_size 1KiB
			max_channels_per_read 1
			max_reply_size 9KiB
		}
	}
	comet {
		hub sse
		http_timeout 1s
		sse_heartbeat 1500ms
		enable_status
	}
}
`

// patience bounds the waits for what the server must do promptly.
const ssePatience = 10 * time.Second

func sseURL(prefix, channels string, query ...string) string {
	u := base + prefix + "/channels/" + url.PathEscape(channels) + ".sse"
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return u
}

// A stream's first event is what a read with its since returns, byte for
// byte, with its last_id as the event's id and the retry delay before it;
// each publish then brings an event whose data is the .json read reply of
// the same since; an idle stream gets heartbeats and outlives http_timeout;
// it counts as a held read until its client goes away.
func TestSSEStreamCarriesReadReplies(t *testing.T) {
	startCaddy(t, sseSites)
	ch := fmt.Sprint("sse-", time.Now().UnixNano())
	registerChannel(t, base, ch)
	publish(t, base, ch, "one\r\nline two </script> \u2028")
	id2 := publish(t, base, ch, "two")
	catchUp := read(t, base, ch, 0)

	s, res := openSSE(t, sseClient, sseURL("", ch, "since=0"), "")
	if s == nil {
		t.Fatalf("open: %d %s", res.status, res.body)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/event-stream",
		"Cache-Control":          "no-store",
		"X-Accel-Buffering":      "no",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := res.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	first := s.next(t, ssePatience)
	if first.retry != "2000" || first.id != strconv.FormatInt(id2, 10) || first.data != catchUp.body {
		t.Fatalf("first event: retry %q id %q data %q;\nwant retry 2000, id %d, data %q", first.retry, first.id, first.data, id2, catchUp.body)
	}
	heldReads(t, base, 1)

	id3 := publish(t, base, ch, "three")
	ev := s.next(t, ssePatience)
	if want := read(t, base, ch, id2).body; ev.id != strconv.FormatInt(id3, 10) || ev.data != want || ev.retry != "" {
		t.Fatalf("event after a publish: id %q data %q, want id %d data %q", ev.id, ev.data, id3, want)
	}

	// Idle past http_timeout (1s): a heartbeat at sse_heartbeat (1.5s),
	// and the stream goes on.
	if ev := s.nextAny(t, ssePatience); !ev.comment || ev.end != nil {
		t.Fatalf("an idle stream got %+v, want a heartbeat comment", ev)
	}
	id4 := publish(t, base, ch, "four")
	if ev := s.next(t, ssePatience); ev.id != strconv.FormatInt(id4, 10) || len(ev.reply(t).Messages[ch]) != 1 {
		t.Fatalf("event after the heartbeat: %+v, want message %d", ev, id4)
	}

	// The client goes away: the stream stops counting as held, so its
	// handler has returned.
	s.close()
	heldReads(t, base, 0)
}

// With nothing to catch up on, the first event comes at once anyway, with
// no messages and the newest id, so that a client knows it is connected and
// where it stands; Last-Event-ID takes precedence over since.
func TestSSEFirstEventAndLastEventID(t *testing.T) {
	startCaddy(t, sseSites)
	ch := fmt.Sprint("sse-first-", time.Now().UnixNano())
	other := ch + "-other"
	registerChannel(t, base, ch)
	registerChannel(t, base, other)
	id1 := publish(t, base, ch, "one")
	newest := publish(t, base, other, "elsewhere")

	s, res := openSSE(t, sseClient, sseURL("", ch, fmt.Sprint("since=", id1)), "")
	if s == nil {
		t.Fatalf("open: %d %s", res.status, res.body)
	}
	ev := s.next(t, ssePatience)
	rep := ev.reply(t)
	if ev.id != strconv.FormatInt(newest, 10) || rep.LastID != newest || len(rep.Messages) != 0 || !strings.Contains(ev.data, `"messages":{}`) {
		t.Fatalf("first event with nothing to catch up on: id %q %q, want no messages and id %d", ev.id, ev.data, newest)
	}
	s.close()

	id2 := publish(t, base, ch, "two")
	s, res = openSSE(t, sseClient, sseURL("", ch, "since=0"), strconv.FormatInt(id1, 10))
	if s == nil {
		t.Fatalf("open: %d %s", res.status, res.body)
	}
	got := s.next(t, ssePatience).reply(t).Messages[ch]
	if len(got) != 1 || got[0].ID != id2 {
		t.Fatalf("Last-Event-ID %d with since=0: %+v, want only message %d", id1, got, id2)
	}
}

// A stream that cannot start gets the API's error with its HTTP status and
// a JSON body, which EventSource does not retry.
func TestSSEErrorsBeforeTheStream(t *testing.T) {
	startCaddy(t, sseSites)
	ch := fmt.Sprint("sse-err-", time.Now().UnixNano())
	registerChannel(t, base, ch, "use_sessions", "1")
	registerChannel(t, base+"/limited", ch)

	expect := func(name, rawURL string, status, code int, message string) {
		t.Helper()
		s, res := openSSE(t, sseClient, rawURL, "")
		if s != nil {
			t.Fatalf("%s: a stream opened", name)
		}
		if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q, want application/json", name, ct)
		}
		mustCode(t, res, status, code, message)
	}
	expect("unknown channel", sseURL("", ch+"-unknown"), 200, -2, "No valid channels")
	expect("unregistered client", sseURL("", ch, "client_id=nobody"), 200, -3, "Unregistered client_id")
	expect("not allowed on the route", sseURL("/private", ch), 403, -1, "")
	expect("invalid channel id", sseURL("", "bad\x01id"), 200, -1, "")

	// max_held_connections 1: the one stream is held for as long as it is
	// open, however idle, and a second is turned away.
	s, res := openSSE(t, sseClient, sseURL("/limited", ch), "")
	if s == nil {
		t.Fatalf("the first stream: %d %s", res.status, res.body)
	}
	s.next(t, ssePatience)
	expect("over max_held_connections", sseURL("/limited", ch), 503, -5, "Too many held connections")
	s.close()

	r := do(t, http.MethodPost, sseURL("", ch), url.Values{"content": {"x"}})
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Fatalf("POST to a stream: %d Allow %q, want 405 Allow GET", r.status, r.header.Get("Allow"))
	}

	// A public subscribe-only route serves streams.
	registerClient(t, base, ch+"-client")
	s, res = openSSE(t, sseClient, sseURL("/public", ch, "client_id="+url.QueryEscape(ch+"-client")), "")
	if s == nil {
		t.Fatalf("a stream on the public route: %d %s", res.status, res.body)
	}
}

// Deleting a channel ends its streams; the reconnect, with Last-Event-ID,
// gets what a read would: no valid channel.
func TestSSEChannelDeleteEndsTheStream(t *testing.T) {
	startCaddy(t, sseSites)
	ch := fmt.Sprint("sse-del-", time.Now().UnixNano())
	registerChannel(t, base, ch)
	s, res := openSSE(t, sseClient, sseURL("", ch), "")
	if s == nil {
		t.Fatalf("open: %d %s", res.status, res.body)
	}
	first := s.next(t, ssePatience)
	mustCode(t, do(t, http.MethodDelete, base+"/private/channels/"+ch+".json", nil), 200, 2, "")
	if ev := s.next(t, ssePatience); ev.end == nil {
		t.Fatalf("after the delete: %+v, want the stream's end", ev)
	}
	_, res = openSSE(t, sseClient, sseURL("", ch), first.id)
	mustCode(t, res, 200, -2, "No valid channels")
}

// A catch-up larger than max_reply_size comes as pages, one event each, at
// once, every message exactly once and in order.
func TestSSEPagedCatchUp(t *testing.T) {
	startCaddy(t, sseSites)
	ch := fmt.Sprint("sse-paged-", time.Now().UnixNano())
	registerChannel(t, base+"/paged", ch)
	var want []int64
	for i := range 30 {
		want = append(want, publish(t, base+"/paged", ch, fmt.Sprintf("%03d %s", i, strings.Repeat("x", 900))))
	}
	s, res := openSSE(t, sseClient, sseURL("/paged", ch), "0")
	if s == nil {
		t.Fatalf("open: %d %s", res.status, res.body)
	}
	var got []int64
	events := 0
	for len(got) < len(want) {
		ev := s.next(t, ssePatience)
		if ev.end != nil {
			t.Fatalf("the stream ended after %d messages", len(got))
		}
		if len(ev.data) > 9<<10 {
			t.Fatalf("an event of %d bytes, over max_reply_size", len(ev.data))
		}
		rep := ev.reply(t)
		for _, m := range rep.Messages[ch] {
			got = append(got, m.ID)
		}
		if ev.id != strconv.FormatInt(rep.LastID, 10) {
			t.Fatalf("event id %q, last_id %d", ev.id, rep.LastID)
		}
		events++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || events < 3 {
		t.Fatalf("got %v in %d events, want %v in pages", got, events, want)
	}
}

// Events are flushed one by one through Caddy's encode (compressed, as
// text/event-stream is by default) and over HTTP/2.
func TestSSEThroughEncodeAndHTTP2(t *testing.T) {
	// HTTP/2 without TLS (h2c), which net/http's HTTP/2 server serves as
	// it serves h2: the same response writer and flushing.
	startCaddyWith(t, "\tservers {\n\t\tprotocols h1 h2c\n\t}\n", sseSites)
	ch := fmt.Sprint("sse-wire-", time.Now().UnixNano())
	registerChannel(t, base, ch)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: h2c}
	for _, tt := range []struct {
		name   string
		client *http.Client
		url    string
		check  func(*http.Response) string
	}{
		{"encode gzip", sseClient, sseURL("/gzip", ch), func(r *http.Response) string {
			if !r.Uncompressed {
				return "the stream was not compressed, so encode was not in its way"
			}
			return ""
		}},
		{"HTTP/2", h2, sseURL("", ch), func(r *http.Response) string {
			if r.ProtoMajor != 2 {
				return "served over " + r.Proto
			}
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, res := openSSE(t, tt.client, tt.url, "")
			if s == nil {
				t.Fatalf("open: %d %s", res.status, res.body)
			}
			if msg := tt.check(s.res); msg != "" {
				t.Fatal(msg)
			}
			s.next(t, ssePatience) // the first event, flushed before any publish
			id := publish(t, base, ch, tt.name)
			if ev := s.next(t, ssePatience); ev.id != strconv.FormatInt(id, 10) {
				t.Fatalf("after a publish: %+v, want event %d", ev, id)
			}
		})
	}
}
