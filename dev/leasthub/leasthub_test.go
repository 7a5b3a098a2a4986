package leasthub

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func newServer(t *testing.T, timeout time.Duration) *httptest.Server {
	t.Helper()
	h := &Handler{HTTPTimeout: caddy.Duration(timeout)}
	if err := h.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	h.hub = newHub() // each test its own hub
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// waitHeld waits until status.json counts n held reads and streams.
func waitHeld(t *testing.T, srv *httptest.Server, n string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, body := get(t, srv.URL+"/status.json")
		if strings.Contains(body, `"held_connections_count":`+n+`}`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s, want %s held", body, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A held read of two channels is answered by a publish on either, in
// comet's read reply shape, as JSON-P when asked; a read nobody publishes
// to is answered at the timeout with no messages and its since as last_id.
func TestHeldReadsGetThePublish(t *testing.T) {
	srv := newServer(t, 300*time.Millisecond)
	type result struct {
		status int
		h      http.Header
		body   string
	}
	got := make(chan result, 2)
	go func() {
		s, h, b := get(t, srv.URL+"/channels/a%7Cb.jsonp?since=5&cb=_JSONP_x")
		got <- result{s, h, b}
	}()
	waitHeld(t, srv, "1")
	resp, err := http.PostForm(srv.URL+"/channels/b.json", url.Values{"content": {`say "hi"`}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(pub), `{"message_id":`) || !strings.HasSuffix(string(pub), `,"return_code":1,"error_message":""}`) {
		t.Errorf("publish reply %s", pub)
	}
	r := <-got
	if r.status != 200 || r.h.Get("Content-Type") != "application/javascript; charset=utf-8" ||
		!strings.HasPrefix(r.body, `_JSONP_x({"since":`) || !strings.Contains(r.body, `"messages":{"b":[{"content":"say \"hi\"","id":`) ||
		!strings.HasSuffix(r.body, `,"return_code":1,"error_message":""});`) {
		t.Errorf("read reply %d %v %s", r.status, r.h, r.body)
	}
	waitHeld(t, srv, "0")

	status, _, body := get(t, srv.URL+"/channels/c.json?since=7")
	if status != 200 || body != `{"since":7,"messages":{},"last_id":7,"return_code":1,"error_message":""}` {
		t.Errorf("timeout reply %d %s", status, body)
	}
	waitHeld(t, srv, "0")
}

// A refused JSON-P callback gets comet's 400 before anything is held, and
// what is not the API goes to the next handler.
func TestRefusalsAndOtherPaths(t *testing.T) {
	srv := newServer(t, time.Minute)
	if status, _, body := get(t, srv.URL+"/channels/a.jsonp?cb=alert"); status != 400 || body != "/* invalid JSONP callback name */" {
		t.Errorf("bad callback: %d %s", status, body)
	}
	for _, p := range []string{"/", "/other.json", "/channels/a.txt"} {
		if status, _, _ := get(t, srv.URL+p); status != http.StatusTeapot {
			t.Errorf("%s: %d, want the next handler's", p, status)
		}
	}
}

// A stream gets an event per publish on its channels, its id the message
// id and its data the read reply.
func TestStreamGetsEveryPublish(t *testing.T) {
	srv := newServer(t, time.Minute)
	resp, err := http.Get(srv.URL + "/channels/a%7Cb.sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	waitHeld(t, srv, "1")
	for _, ch := range []string{"a", "c", "b"} {
		r, err := http.PostForm(srv.URL+"/channels/"+ch+".json", url.Values{"content": {"m-" + ch}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}
	var text strings.Builder
	buf := make([]byte, 4096)
	for strings.Count(text.String(), "\n\n") < 3 {
		n, err := resp.Body.Read(buf)
		text.Write(buf[:n])
		if err != nil {
			t.Fatalf("%v after %q", err, text.String())
		}
	}
	events := strings.Split(strings.TrimSuffix(text.String(), "\n\n"), "\n\n")
	if len(events) != 3 || events[0] != "retry: 2000" ||
		!strings.HasPrefix(events[1], "id: ") || !strings.Contains(events[1], `"messages":{"a":[{"content":"m-a"`) ||
		!strings.Contains(events[2], `"messages":{"b":[{"content":"m-b"`) {
		t.Errorf("stream %q", text.String())
	}
}

func TestCaddyfile(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("least_hub {\n http_timeout 5s\n}")); err != nil ||
		time.Duration(h.HTTPTimeout) != 5*time.Second {
		t.Errorf("http_timeout: %v, %v", h.HTTPTimeout, err)
	}
	for _, bad := range []string{"least_hub x", "least_hub {\n http_timeout\n}", "least_hub {\n http_timeout soon\n}", "least_hub {\n limit 5\n}"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
