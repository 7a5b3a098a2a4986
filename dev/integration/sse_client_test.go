package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvent is one event of an event stream, as EventSource dispatches it,
// or a comment line (a heartbeat), or the stream's end.
type sseEvent struct {
	id, data, retry string
	comment         bool
	end             error // io.EOF or the read error that ended the stream
}

// reply decodes the event's data, a read reply.
func (e sseEvent) reply(t *testing.T) reply {
	t.Helper()
	var rep reply
	if err := json.Unmarshal([]byte(e.data), &rep); err != nil {
		t.Fatalf("event data is not a reply: %v: %q", err, e.data)
	}
	return rep
}

// sseStream is an open event stream. A goroutine of its own parses it into
// events; closing the stream (cancelling its request) ends that goroutine,
// which sends the stream's end as its last event.
type sseStream struct {
	res    *http.Response
	events chan sseEvent
	ctx    context.Context
	cancel context.CancelFunc
}

// sseClient is the client of event streams; its own, so that streams never
// share connections with the long-poll client, whose idle connections the
// tests drop at reloads.
var sseClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// openSSE opens an event stream at rawURL, with a Last-Event-ID header
// unless lastEventID is empty. A reply other than 200 text/event-stream
// comes back as a response, with a nil stream. The stream is closed when the
// test ends.
func openSSE(t *testing.T, client *http.Client, rawURL, lastEventID string) (*sseStream, response) {
	t.Helper()
	s, res, err := dialSSE(client, rawURL, lastEventID)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		t.Cleanup(s.close)
	}
	return s, res
}

// dialSSE is openSSE for callers off the test's goroutine, which close
// the stream themselves.
func dialSSE(client *http.Client, rawURL, lastEventID string) (*sseStream, response, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		cancel()
		return nil, response{}, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, response{}, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		defer cancel()
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return nil, response{status: res.StatusCode, header: res.Header, body: string(b)}, nil
	}
	s := &sseStream{res: res, events: make(chan sseEvent, 64), ctx: ctx, cancel: cancel}
	go s.parse()
	return s, response{status: res.StatusCode, header: res.Header}, nil
}

// parse reads the stream by the rules of the EventSource specification
// (lines, fields, an empty line dispatches) and sends its events.
func (s *sseStream) parse() {
	defer close(s.events)
	defer s.res.Body.Close()
	r := bufio.NewReader(s.res.Body)
	var ev sseEvent
	hasData := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.send(sseEvent{end: err})
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData || ev.retry != "" {
				if !s.send(ev) {
					return
				}
			}
			ev, hasData = sseEvent{}, false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if !s.send(sseEvent{comment: true, data: value}) {
				return
			}
		case "id":
			ev.id = value
		case "retry":
			ev.retry = value
		case "data":
			if hasData {
				ev.data += "\n"
			}
			ev.data += value
			hasData = true
		}
	}
}

// send hands ev to the test, unless the test closed the stream.
func (s *sseStream) send(ev sseEvent) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// close drops the connection, as a client that goes away does.
func (s *sseStream) close() { s.cancel() }

// next returns the stream's next event (or its end), skipping comments,
// failing the test after within.
func (s *sseStream) next(t *testing.T, within time.Duration) sseEvent {
	t.Helper()
	for {
		ev := s.nextAny(t, within)
		if !ev.comment {
			return ev
		}
	}
}

// nextAny returns the stream's next event, comment or end.
func (s *sseStream) nextAny(t *testing.T, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			return sseEvent{end: io.EOF}
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return sseEvent{}
	}
}
