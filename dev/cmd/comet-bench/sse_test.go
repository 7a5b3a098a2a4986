package main

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 10000)
	stream := ": hi\n\n" +
		"id: 1\ndata: a\ndata: b\n\n" + // two data lines join with "\n"
		"event: batch\r\ndata:no-space\r\n\r\n" + // CRLF, no space after the colon; the id stays 1
		":\n" + // a bare heartbeat
		"id: 7\n\n" + // no data: not dispatched, but the id is kept
		"retry: 1000\ndata: " + long + "\n\n" + // a line longer than the buffer
		"data: cut off"
	sr := newSSEReader(strings.NewReader(stream))
	for i, want := range []sseEvent{
		{ID: "1", Data: []byte("a\nb")},
		{ID: "1", Type: "batch", Data: []byte("no-space")},
		{ID: "7", Data: []byte(long)},
	} {
		ev, err := sr.next()
		if err != nil || ev.ID != want.ID || ev.Type != want.Type || string(ev.Data) != string(want.Data) {
			t.Fatalf("event %d: %+v (data %.20q), %v; want %+v", i, ev, ev.Data, err, want)
		}
	}
	if _, err := sr.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("an event cut off by the end of the stream: %v, want io.ErrUnexpectedEOF", err)
	}
	if sr.Comments != 2 {
		t.Errorf("comments = %d, want 2", sr.Comments)
	}
	if _, err := newSSEReader(strings.NewReader(": hi\n\n")).next(); err != io.EOF {
		t.Errorf("a stream that ends between events: %v, want io.EOF", err)
	}
}

func TestSSEReaderBoundsLines(t *testing.T) {
	r := io.MultiReader(strings.NewReader("data: "), &endlessX{})
	if _, err := newSSEReader(r).next(); !errors.Is(err, errSSELineTooLong) {
		t.Errorf("an endless line: %v, want errSSELineTooLong", err)
	}
}

// endlessX is a reader of 'x' without end.
type endlessX struct{}

func (endlessX) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 'x'
	}
	return len(b), nil
}

func TestSSEPath(t *testing.T) {
	if got, want := ssePath([]string{"news", "a b"}), "/channels/news%7Ca%20b.sse"; got != want {
		t.Errorf("ssePath = %q, want %q", got, want)
	}
}

// A fan-out run over comet's event stream: every message reaches every
// reader once and in order, with readers of two channels each, streams
// that end every few events and resume with Last-Event-ID, heartbeats
// between events, and both clients.
func TestFanoutOverFakeCometSSE(t *testing.T) {
	for _, client := range []string{"lean", "net/http"} {
		t.Run(strings.ReplaceAll(client, "/", "_"), func(t *testing.T) {
			f := newFakeCometSSE(4, 5*time.Millisecond)
			srv := httptest.NewServer(f)
			defer srv.Close()
			cfg := fanoutConfig{
				targetConfig: targetConfig{Target: srv.URL}, Transport: transportSSE, Client: client,
				Prefix: "fake", Channels: 3, Readers: 9, PerRead: 2, Messages: 40, Rate: 100, Size: 80, Publishers: 1,
				Warmup: 50 * time.Millisecond, Duration: time.Minute, Drain: 10 * time.Second, SetupTimeout: 10 * time.Second,
				Settle: 100 * time.Millisecond, ReadTimeout: 10 * time.Second, DialConcurrency: 4,
			}
			rep, err := runFanout(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			// Each channel has 9*2/3 = 6 readers.
			total := int64(rep.WarmupMessages + cfg.Messages)
			if !rep.ok() || rep.Delivered != total*6 || rep.Foreign != 0 || rep.Reordered != 0 {
				t.Errorf("delivered %d of %d, lost %d, duplicated %d, reordered %d, foreign %d, ok %v (errors %v, %s)",
					rep.Delivered, total*6, rep.Lost, rep.Duplicated, rep.Reordered, rep.Foreign, rep.ok(), rep.Errors, rep.LastError)
			}
			if f.resumed.Load() == 0 {
				t.Error("no stream resumed with Last-Event-ID: the test did not cover reconnecting")
			}
			for kind := range rep.Errors {
				if kind != "read_stream_ended" {
					t.Errorf("errors: %v", rep.Errors)
					break
				}
			}
		})
	}
}
