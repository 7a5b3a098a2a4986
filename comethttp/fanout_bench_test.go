package comethttp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// fanoutReaders is how many readers one publish releases in BenchmarkFanout:
// the readers of one busy channel.
const fanoutReaders = 500

// BenchmarkFanout measures what the handler adds per delivery when one
// publish releases fanoutReaders readers of one channel: each op is one
// publish and its fanoutReaders deliveries, served through ServeHTTP into
// writers that keep nothing, so net/http's and Caddy's own costs are left
// out. Divide ns/op and allocs/op by fanoutReaders for the figure per
// delivery; the setup of each op (the requests, the held reads) is not
// timed.
func BenchmarkFanout(b *testing.B) {
	for _, format := range []string{"json", "jsonp"} {
		b.Run("longpoll/"+format, func(b *testing.B) { benchmarkFanoutLongPoll(b, format) })
	}
	b.Run("sse", benchmarkFanoutSSE)
}

// fanoutHandler returns a handler on a memory hub with the channel "bench".
func fanoutHandler(b *testing.B) (*Handler, *hub.Hub) {
	h := hub.NewMemory(hub.Config{HTTPTimeout: time.Hour, SessionTimeout: time.Hour, InactiveChannelTimeout: hub.Off})
	state := NewHubState(h)
	api, err := New(state, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		api.Stop()
		state.Close()
		h.Close()
	})
	if err := h.RegisterChannel(context.Background(), "bench", false, 0); err != nil {
		b.Fatal(err)
	}
	return api, h
}

func fanoutContent() string { return strings.Repeat("x", 100) }

func benchmarkFanoutLongPoll(b *testing.B, format string) {
	api, h := fanoutHandler(b)
	content := fanoutContent()
	last, err := h.Publish(context.Background(), "bench", content)
	if err != nil {
		b.Fatal(err)
	}
	writers := make([]*discardWriter, fanoutReaders)
	for i := range writers {
		writers[i] = &discardWriter{header: make(http.Header)}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		target := fmt.Sprintf("/channels/bench.%s?since=%d&cb=_JSONP_1", format, last.ID)
		var done sync.WaitGroup
		for _, w := range writers {
			clear(w.header)
			r := httptest.NewRequest(http.MethodGet, target, nil)
			done.Go(func() { api.ServeHTTP(w, r) })
		}
		for h.Held() < fanoutReaders {
			time.Sleep(50 * time.Microsecond) // polling the hub's count, which signals nothing
		}
		b.StartTimer()
		if last, err = h.Publish(context.Background(), "bench", content); err != nil {
			b.Fatal(err)
		}
		done.Wait()
	}
	b.StopTimer()
	for _, w := range writers {
		if w.status != http.StatusOK || !bytes.Contains(w.last, []byte(content)) {
			b.Fatalf("a reader got %d %q", w.status, w.last)
		}
	}
}

func benchmarkFanoutSSE(b *testing.B) {
	api, h := fanoutHandler(b)
	content := fanoutContent()
	ctx, cancel := context.WithCancel(context.Background())
	var streams sync.WaitGroup
	b.Cleanup(func() { cancel(); streams.Wait() })
	events := make(chan struct{}, fanoutReaders)
	for range fanoutReaders {
		w := &streamWriter{discardWriter: discardWriter{header: make(http.Header)}, events: events, content: []byte(content)}
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/channels/bench.sse", nil)
		streams.Go(func() { api.ServeHTTP(w, r) })
	}
	for h.Held() < fanoutReaders {
		time.Sleep(50 * time.Microsecond) // polling the hub's count, which signals nothing
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Publish(context.Background(), "bench", content); err != nil {
			b.Fatal(err)
		}
		for range fanoutReaders {
			<-events
		}
	}
}

// discardWriter is the least a ResponseWriter can cost: it keeps the last
// body written, by reference, and its status.
type discardWriter struct {
	header http.Header
	status int
	last   []byte
}

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) { w.status = status }

func (w *discardWriter) Write(p []byte) (int, error) {
	w.last = p
	return len(p), nil
}

// streamWriter is a discardWriter that can flush, and tells events when it
// is handed an event carrying content.
type streamWriter struct {
	discardWriter
	events  chan<- struct{}
	content []byte
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.content) {
		w.events <- struct{}{}
	}
	return len(p), nil
}

func (w *streamWriter) Flush() {}
