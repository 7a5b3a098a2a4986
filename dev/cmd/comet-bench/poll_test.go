package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// newTestPoller returns a lean poller for srv's URL plus path prefix.
func newTestPoller(t *testing.T, srv *httptest.Server, prefix string, header http.Header, timeout time.Duration) *leanPoller {
	t.Helper()
	d, err := newLeanDialer(&endpoint{base: srv.URL + prefix, header: header}, timeout, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	p := newLeanPoller(d)
	t.Cleanup(p.close)
	return p
}

func TestLeanPollerKeepsOneConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
		if r.URL.EscapedPath() != "/comet/channels/a%7Cb.json" || r.URL.RawQuery != "since=7" || r.Header.Get("X-Token") != "t" {
			http.Error(w, "wrong request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		// Chunked, in two writes.
		w.Write([]byte(`{"return_code":`))
		w.(http.Flusher).Flush()
		w.Write([]byte(`1}`))
	}))
	defer srv.Close()
	p := newTestPoller(t, srv, "/comet", http.Header{"X-Token": {"t"}}, time.Minute)
	var body bytes.Buffer
	for i := range 5 {
		written := 0
		status, _, err := p.get(context.Background(), "/channels/a%7Cb.json?since=7", nil, &body, func() { written++ })
		if err != nil || status != 200 || body.String() != `{"return_code":1}` || written != 1 {
			t.Fatalf("get %d: status %d, err %v, body %q, written hook called %d times", i, status, err, body.String(), written)
		}
	}
	if len(conns) != 1 {
		t.Errorf("5 reads used %d connections, want 1: %v", len(conns), conns)
	}
}

// A kept-alive connection that the server closed while idle is replaced
// without an error, and a reply with Connection: close is honoured.
func TestLeanPollerReconnects(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Query().Get("close") == "1" {
			w.Header().Set("Connection", "close")
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	p := newTestPoller(t, srv, "", nil, time.Minute)
	var body bytes.Buffer
	get := func(path string) {
		t.Helper()
		if status, _, err := p.get(context.Background(), path, nil, &body, nil); err != nil || status != 200 || body.String() != "ok" {
			t.Fatalf("get %s: status %d, err %v, body %q", path, status, err, body.String())
		}
	}
	get("/a")
	srv.CloseClientConnections()
	get("/b")
	get("/c?close=1")
	get("/d")
	if len(conns) != 3 {
		t.Errorf("want 3 connections (first, after the server closed it, after Connection: close), got %d", len(conns))
	}
}

func TestLeanPollerCancelAndTimeout(t *testing.T) {
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	// Cancelling the context ends a held read.
	p := newTestPoller(t, srv, "", nil, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := p.get(ctx, "/held", nil, &bytes.Buffer{}, nil)
		errc <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a cancelled read returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled read did not return")
	}

	// A read the server never answers ends at the read timeout.
	p = newTestPoller(t, srv, "", nil, 50*time.Millisecond)
	_, _, err := p.get(context.Background(), "/held", nil, &bytes.Buffer{}, nil)
	if errorKind(err) != "timeout" {
		t.Errorf("read past the timeout: %v (kind %q), want a timeout", err, errorKind(err))
	}
}

func TestLeanPollerRefusedConnection(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	p := newTestPoller(t, srv, "", nil, time.Minute)
	_, _, err := p.get(context.Background(), "/", nil, &bytes.Buffer{}, nil)
	if errorKind(err) != "connection_refused" {
		t.Errorf("get from a closed port: %v (kind %q), want connection_refused", err, errorKind(err))
	}
}
