package comethttp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// The readers one publish releases with the same reply get one encoding of
// it per format and callback, shared, not copied per reader: long polls in
// JSON and in JSON-P with two callbacks, and event streams. In a synctest
// bubble, so that "every read and stream waits for the publish" is
// something the test can wait for (a stream counts as held from its start,
// before it waits).
func TestReadersOfOnePublishShareTheirEncoding(t *testing.T) {
	synctest.Test(t, testReadersOfOnePublishShareTheirEncoding)
}

func testReadersOfOnePublishShareTheirEncoding(t *testing.T) {
	h := hub.NewMemory(hub.Config{HTTPTimeout: time.Hour})
	state := NewHubState(h)
	api, err := New(state, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var streams sync.WaitGroup
	t.Cleanup(func() { cancel(); streams.Wait(); api.Stop(); state.Close(); h.Close() })
	if err := h.RegisterChannel(ctx, "news", false, 0); err != nil {
		t.Fatal(err)
	}
	first, err := h.Publish(ctx, "news", "first")
	if err != nil {
		t.Fatal(err)
	}

	const perKind = 10
	kinds := []string{"json", "jsonp?cb=_JSONP_1&", "jsonp?cb=_JSONP_2&"}
	var reads sync.WaitGroup
	writers := make(map[string][]*discardWriter)
	for _, kind := range kinds {
		sep := "?"
		if bytes.ContainsRune([]byte(kind), '?') {
			sep = ""
		}
		for range perKind {
			w := &discardWriter{header: make(http.Header)}
			writers[kind] = append(writers[kind], w)
			r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/channels/news.%s%ssince=%d", kind, sep, first.ID), nil)
			reads.Go(func() { api.ServeHTTP(w, r) })
		}
	}
	events := make(chan []byte, perKind)
	for range perKind {
		w := &eventKeeper{streamWriter: streamWriter{discardWriter: discardWriter{header: make(http.Header)}, content: []byte("second")}, kept: events}
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("/channels/news.sse?since=%d", first.ID), nil)
		streams.Go(func() { api.ServeHTTP(w, r) })
	}
	synctest.Wait() // every read and stream waits for a publish
	if h.Held() != 4*perKind {
		t.Fatalf("%d reads held, want %d", h.Held(), 4*perKind)
	}
	if _, err := h.Publish(ctx, "news", "second"); err != nil {
		t.Fatal(err)
	}
	reads.Wait()

	for _, kind := range kinds {
		var shared []byte
		for _, w := range writers[kind] {
			if w.status != http.StatusOK || !bytes.Contains(w.last, []byte(`"content":"second"`)) {
				t.Fatalf("%s reader: %d %q", kind, w.status, w.last)
			}
			if cb, ok := bytes.CutPrefix([]byte(kind), []byte("jsonp?cb=")); ok && !bytes.HasPrefix(w.last, cb[:len(cb)-1]) {
				t.Fatalf("%s reader: %q does not call its callback", kind, w.last)
			}
			if shared == nil {
				shared = w.last
			} else if &w.last[0] != &shared[0] {
				t.Fatalf("two %s readers of one publish got copies of their reply, not one encoding", kind)
			}
		}
	}
	var shared []byte
	for range perKind {
		ev := <-events
		if shared == nil {
			shared = ev
		} else if &ev[0] != &shared[0] {
			t.Fatal("two event streams released by one publish got copies of their event, not one encoding")
		}
	}
}

// eventKeeper is a streamWriter that hands over the event carrying content
// by reference.
type eventKeeper struct {
	streamWriter
	kept chan<- []byte
}

func (w *eventKeeper) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.content) {
		w.kept <- p
	}
	return len(p), nil
}
