package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeCometSSE is an httptest handler with as much of comet's API as a
// fan-out over SSE uses: registering channels, publishing (hub-wide message
// ids), and GET /channels/IDS.sse?since=N as docs/api.md ("Server-Sent Events") specifies it:
// text/event-stream, a first event with the catch-up, then one event per
// publish, each event's data the .json read reply and its id the reply's
// last_id; comment heartbeats; Last-Event-ID wins over since. It ends each
// stream after maxEvents events, so that readers reconnect mid-run.
type fakeCometSSE struct {
	maxEvents int
	heartbeat time.Duration

	mu       sync.Mutex
	lastID   int64
	channels map[string][]replyMessage
	changed  chan struct{}

	// resumed counts streams opened with a Last-Event-ID.
	resumed atomic.Int64
}

func newFakeCometSSE(maxEvents int, heartbeat time.Duration) *fakeCometSSE {
	return &fakeCometSSE{maxEvents: maxEvents, heartbeat: heartbeat, lastID: 1000, channels: map[string][]replyMessage{}, changed: make(chan struct{})}
}

func (f *fakeCometSSE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/channels.json":
		io.WriteString(w, `{"return_code":1,"error_message":""}`)
	case r.Method == http.MethodPost && strings.HasSuffix(path, ".json"):
		ch := strings.TrimSuffix(strings.TrimPrefix(path, "/channels/"), ".json")
		f.mu.Lock()
		f.lastID++
		id := f.lastID
		f.channels[ch] = append(f.channels[ch], replyMessage{Content: r.FormValue("content"), ID: id})
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		fmt.Fprintf(w, `{"message_id":%d,"return_code":1,"error_message":""}`, id)
	case r.Method == http.MethodGet && strings.HasSuffix(path, ".sse"):
		f.stream(w, r, strings.Split(strings.TrimSuffix(strings.TrimPrefix(path, "/channels/"), ".sse"), "|"))
	default:
		http.NotFound(w, r)
	}
}

// after returns the messages of channels newer than since, the newest id
// among them (since when there are none), and the channel that wakes on the
// next publish.
func (f *fakeCometSSE) after(channels []string, since int64) (map[string][]replyMessage, int64, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out, last := map[string][]replyMessage{}, since
	for _, ch := range channels {
		for _, m := range f.channels[ch] {
			if m.ID > since {
				out[ch] = append(out[ch], m)
				last = max(last, m.ID)
			}
		}
	}
	return out, last, f.changed
}

func (f *fakeCometSSE) stream(w http.ResponseWriter, r *http.Request, channels []string) {
	since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if v := r.Header.Get("Last-Event-Id"); v != "" {
		f.resumed.Add(1)
		since, _ = strconv.ParseInt(v, 10, 64)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "retry: 1000\n\n")
	beat := time.NewTicker(f.heartbeat)
	defer beat.Stop()
	for events := 0; events < f.maxEvents; events++ {
		msgs, last, changed := f.after(channels, since)
		if events > 0 && len(msgs) == 0 {
			// Nothing new: heartbeats until a publish.
			select {
			case <-changed:
			case <-beat.C:
				io.WriteString(w, ": heartbeat\n\n")
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
			events--
			continue
		}
		data, _ := json.Marshal(map[string]any{"since": since, "messages": msgs, "last_id": last, "return_code": 1, "error_message": ""})
		fmt.Fprintf(w, "id: %d\ndata: %s\n\n", last, data)
		w.(http.Flusher).Flush()
		since = last
	}
}
