package comethttp

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// mounted serves a handler on a fresh memory hub under /comet/ of a plain
// net/http server, as a Go program without Caddy does.
func mounted(t *testing.T) (*Handler, *httptest.Server) {
	t.Helper()
	h, err := hub.New("plain", hub.Config{}, func(o hub.StoreOptions) (hub.Store, error) { return hub.NewMemoryStore(o), nil })
	if err != nil {
		t.Fatal(err)
	}
	state := NewHubState(h)
	api, err := New(state, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/comet/", http.StripPrefix("/comet", api))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.RegisterOnShutdown(api.Stop)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		api.Stop()
		state.Close()
		h.Close()
	})
	return api, srv
}

type readReply struct {
	Messages map[string][]struct {
		Content string `json:"content"`
		ID      int64  `json:"id"`
	} `json:"messages"`
	LastID     int64 `json:"last_id"`
	ReturnCode int   `json:"return_code"`
}

func postForm(t *testing.T, target string, form url.Values) int {
	t.Helper()
	res, err := http.PostForm(target, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var reply struct {
		ReturnCode int `json:"return_code"`
	}
	if err := json.NewDecoder(res.Body).Decode(&reply); err != nil {
		t.Fatal(err)
	}
	return reply.ReturnCode
}

// The handler serves the API from a plain net/http server, without Caddy:
// a long poll is held until a publish releases it with the message, and
// paths outside the API and OPTIONS requests get 404.
func TestHandlerWithoutCaddy(t *testing.T) {
	api, srv := mounted(t)
	if rc := postForm(t, srv.URL+"/comet/channels.json", url.Values{"channel_id": {"news"}}); rc != hub.CodeOK {
		t.Fatalf("registering news: return_code %d", rc)
	}

	got := make(chan readReply, 1)
	go func() {
		var reply readReply
		res, err := http.Get(srv.URL + "/comet/channels/news.json")
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&reply)
			res.Body.Close()
		}
		if err != nil {
			t.Error(err)
		}
		got <- reply
	}()
	waitFor(t, "the read to be held", func() bool { return api.hub.Held() == 1 })
	if rc := postForm(t, srv.URL+"/comet/channels/news.json", url.Values{"content": {"hello"}}); rc != hub.CodeOK {
		t.Fatalf("publishing: return_code %d", rc)
	}
	select {
	case reply := <-got:
		if reply.ReturnCode != hub.CodeOK || len(reply.Messages["news"]) != 1 || reply.Messages["news"][0].Content != "hello" {
			t.Fatalf("long poll: %+v, want the message published while it was held", reply)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll was not released by the publish")
	}
}

func TestHandlerWithoutCaddyNotFound(t *testing.T) {
	_, srv := mounted(t)
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/comet/index.html"},
		{http.MethodOptions, "/comet/channels/news.json"},
	} {
		r, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", tt.method, tt.path, res.StatusCode)
		}
	}
}

// Stop answers a held read at once, as when the server shuts down.
func TestHandlerStopAnswersHeldReads(t *testing.T) {
	api, srv := mounted(t)
	if rc := postForm(t, srv.URL+"/comet/channels.json", url.Values{"channel_id": {"news"}}); rc != hub.CodeOK {
		t.Fatalf("registering news: return_code %d", rc)
	}
	done := make(chan int, 1)
	go func() {
		res, err := http.Get(srv.URL + "/comet/channels/news.json")
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		var reply readReply
		err = json.NewDecoder(res.Body).Decode(&reply)
		res.Body.Close()
		if err != nil {
			t.Error(err)
		}
		done <- reply.ReturnCode
	}()
	waitFor(t, "the read to be held", func() bool { return api.hub.Held() == 1 })
	api.Stop()
	select {
	case rc := <-done:
		if rc != hub.CodeOK {
			t.Errorf("held read answered with return_code %d, want 1 and no messages", rc)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not answer the held read")
	}
}

// Stop ends an open event stream at once, between its events, as when the
// server shuts down or Caddy reloads; the hub goes on.
func TestHandlerStopEndsStreams(t *testing.T) {
	api, srv := mounted(t)
	if rc := postForm(t, srv.URL+"/comet/channels.json", url.Values{"channel_id": {"news"}}); rc != hub.CodeOK {
		t.Fatalf("registering news: return_code %d", rc)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(srv.URL + "/comet/channels/news.sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := bufio.NewReader(res.Body)
	for {
		line, err := events.ReadString('\n')
		if err != nil {
			t.Fatalf("before the first event: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	waitFor(t, "the stream to wait", func() bool { return api.hub.Held() == 1 })
	api.Stop()
	if rest, err := io.ReadAll(events); err != nil {
		t.Fatalf("the stream did not end cleanly at Stop: %v (after %q)", err, rest)
	}
	waitFor(t, "the stream to be uncounted", func() bool { return api.hub.Held() == 0 })
}
