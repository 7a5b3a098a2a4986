package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeNchan is an httptest handler that speaks Nchan's publisher,
// subscriber and stub status protocols as Nchan 1.3.6 does (src/util/
// nchan_msg.c, nchan_output.c, subscribers/longpoll.c and eventsource.c),
// with a memory store, so that the tool's Nchan client can be tested without
// nginx:
//
//   - message ids are "time:tag", time in seconds and tag the message's
//     place among its channel's messages of that second. The fake's clock
//     moves one second every perSecond publishes, so that readers meet
//     several messages in a second and the turn of a second.
//   - a long-poll subscriber's id is If-Modified-Since (the time) and
//     If-None-Match (the tag); If-None-Match alone must be "time:tag";
//     Last-Event-ID (or ?last_event_id) when neither is sent; else the
//     oldest message. The reply is the next message after that id, with
//     Last-Modified and Etag, or 408 after timeout with an Etag and no
//     Last-Modified (nginx drops it on a status other than 200).
//   - an EventSource subscriber (Accept: text/event-stream) gets ": hi",
//     then "id: time:tag" and "data: ..." for each message after its id,
//     and the stream is closed after timeout without a message.
type fakeNchan struct {
	timeout   time.Duration
	perSecond int

	mu        sync.Mutex
	channels  map[string][]fakeNchanMsg
	published int
	changed   chan struct{} // closed and replaced on every publish

	subscribers atomic.Int64
	timeouts    atomic.Int64
	// badRequests counts subscriber requests whose id headers were not a
	// well-formed pair (If-None-Match without If-Modified-Since).
	badRequests atomic.Int64
}

type fakeNchanMsg struct {
	id   nchanID
	body string
}

func newFakeNchan(timeout time.Duration, perSecond int) *fakeNchan {
	return &fakeNchan{timeout: timeout, perSecond: perSecond, channels: map[string][]fakeNchanMsg{}, changed: make(chan struct{})}
}

// fakeNchanEpoch is the fake's first second.
const fakeNchanEpoch = 1_700_000_000

func (f *fakeNchan) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case nchanPubPath:
		f.publish(w, r)
	case nchanSubPath:
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			f.eventSource(w, r)
		} else {
			f.longPoll(w, r)
		}
	case nchanStatusPath:
		fmt.Fprintf(w, "total published messages: %d\nstored messages: 0\nchannels: %d\nsubscribers: %d\nnchan version: 1.3.6\n",
			f.published, len(f.channels), f.subscribers.Load())
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeNchan) publish(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ch := r.URL.Query().Get("id")
	f.mu.Lock()
	sec := int64(fakeNchanEpoch + f.published/f.perSecond)
	f.published++
	msgs := f.channels[ch]
	id := nchanID{Time: sec}
	if n := len(msgs); n > 0 && msgs[n-1].id.Time == sec {
		id.Tag = msgs[n-1].id.Tag + 1
	}
	f.channels[ch] = append(msgs, fakeNchanMsg{id: id, body: string(body)})
	close(f.changed)
	f.changed = make(chan struct{})
	n := len(f.channels[ch])
	f.mu.Unlock()
	status := http.StatusAccepted
	if f.subscribers.Load() > 0 {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "text/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"messages": %d, "requested": -1, "subscribers": %d, "last_message_id": "%s" }`, n, f.subscribers.Load(), id)
}

// subscriberID is the message id a subscriber asks to read after; ok is
// false for the oldest message.
func (f *fakeNchan) subscriberID(r *http.Request) (id nchanID, ok bool) {
	ims, inm := r.Header.Get("If-Modified-Since"), r.Header.Get("If-None-Match")
	switch {
	case ims != "":
		t, err := http.ParseTime(ims)
		if err != nil {
			return nchanID{}, false
		}
		tag, _ := strconv.Atoi(inm)
		return nchanID{Time: t.Unix(), Tag: tag}, true
	case inm != "":
		id, err := parseNchanID(inm)
		if err != nil {
			f.badRequests.Add(1)
			return nchanID{}, false
		}
		return id, true
	}
	for _, v := range []string{r.Header.Get("Last-Event-Id"), r.URL.Query().Get("last_event_id")} {
		if id, err := parseNchanID(v); err == nil {
			return id, true
		}
	}
	return nchanID{}, false
}

// next waits for the first message after id (any message when !after), for
// at most the subscriber timeout.
func (f *fakeNchan) next(r *http.Request, ch string, id nchanID, after bool) (fakeNchanMsg, bool) {
	deadline := time.NewTimer(f.timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		for _, m := range f.channels[ch] {
			if !after || m.id.order() > id.order() {
				f.mu.Unlock()
				return m, true
			}
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return fakeNchanMsg{}, false
		case <-r.Context().Done():
			return fakeNchanMsg{}, false
		}
	}
}

func (f *fakeNchan) longPoll(w http.ResponseWriter, r *http.Request) {
	f.subscribers.Add(1)
	defer f.subscribers.Add(-1)
	id, after := f.subscriberID(r)
	m, ok := f.next(r, r.URL.Query().Get("id"), id, after)
	if !ok {
		f.timeouts.Add(1)
		w.Header().Set("Etag", strconv.Itoa(id.Tag))
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	w.Header().Set("Last-Modified", time.Unix(m.id.Time, 0).UTC().Format(http.TimeFormat))
	w.Header().Set("Etag", strconv.Itoa(m.id.Tag))
	w.Header().Set("Vary", "If-None-Match, If-Modified-Since")
	io.WriteString(w, m.body)
}

func (f *fakeNchan) eventSource(w http.ResponseWriter, r *http.Request) {
	f.subscribers.Add(1)
	defer f.subscribers.Add(-1)
	id, after := f.subscriberID(r)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	io.WriteString(w, ": hi\n\n")
	w.(http.Flusher).Flush()
	for {
		m, ok := f.next(r, r.URL.Query().Get("id"), id, after)
		if !ok {
			f.timeouts.Add(1)
			return // Nchan just disconnects a stream at its timeout
		}
		fmt.Fprintf(w, "id: %s\ndata: %s\n\n", m.id, m.body)
		w.(http.Flusher).Flush()
		id, after = m.id, true
	}
}
