package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNchanIDs(t *testing.T) {
	id, err := parseNchanID("1796198215:3")
	if err != nil || id != (nchanID{Time: 1796198215, Tag: 3}) || id.String() != "1796198215:3" {
		t.Errorf("parseNchanID = %+v, %v", id, err)
	}
	for _, s := range []string{"", "17", "17:", ":3", "x:1", "17:-1", "17:[0],1"} {
		if _, err := parseNchanID(s); err == nil {
			t.Errorf("parseNchanID(%q) accepted it", s)
		}
	}
	// Ids order by time, then tag.
	if !(nchanID{10, 32767}.order() < nchanID{11, 0}.order() && nchanID{11, 0}.order() < nchanID{11, 1}.order()) {
		t.Error("order does not follow the ids")
	}
}

// A reader's cursor is the previous reply's Last-Modified and Etag, sent
// back as If-Modified-Since and If-None-Match; a 408 reply carries no
// Last-Modified, and the cursor keeps the one it had.
func TestNchanCursor(t *testing.T) {
	cur := cursorAt(nchanID{Time: 1700000000, Tag: 2})
	h := cur.header()
	if h.Get("If-Modified-Since") != "Tue, 14 Nov 2023 22:13:20 GMT" || h.Get("If-None-Match") != "2" {
		t.Errorf("request fields %v", h)
	}
	cur.update(http.Header{"Etag": {"2"}, "Vary": {"If-None-Match, If-Modified-Since"}}) // a 408
	if id, err := cur.id(); err != nil || id != (nchanID{1700000000, 2}) {
		t.Errorf("after a 408: %+v, %v", id, err)
	}
	cur.update(http.Header{"Last-Modified": {"Tue, 14 Nov 2023 22:13:21 GMT"}, "Etag": {"0"}})
	if id, err := cur.id(); err != nil || id != (nchanID{1700000001, 0}) {
		t.Errorf("after a message: %+v, %v", id, err)
	}
	cur.update(http.Header{"Etag": {"1,[0]"}}) // a multi-channel tag
	if _, err := cur.id(); err == nil {
		t.Error("a multi-channel Etag was taken for a message id")
	}
}

func TestParseStubStatus(t *testing.T) {
	status := "total published messages: 2\nstored messages: 2\nshared memory used: 20K\nchannels: 1\nsubscribers: 5000\nnchan version: 1.3.6\n"
	if n, err := parseStubStatus([]byte(status)); err != nil || n != 5000 {
		t.Errorf("parseStubStatus = %d, %v; want 5000", n, err)
	}
	if _, err := parseStubStatus([]byte("<html>not found</html>")); err == nil {
		t.Error("a page without a subscribers line was accepted")
	}
}

// A fan-out run against a server that speaks Nchan's protocols: every
// message reaches every reader once and in order, across several messages
// in one second (tags), the turn of seconds, subscriber timeouts (408 for
// long-poll, the stream closed for EventSource) between messages, and with
// both clients. The readers never send an If-None-Match without its
// If-Modified-Since, which Nchan would take for "from the oldest message".
func TestFanoutAgainstFakeNchan(t *testing.T) {
	for _, client := range []string{"lean", "net/http"} {
		for _, transport := range []string{transportLongPoll, transportSSE} {
			t.Run(strings.ReplaceAll(client, "/", "_")+"/"+transport, func(t *testing.T) {
				// 2 channels at 25/s: a message every 80 ms on each, past
				// the 30 ms subscriber timeout; 3 messages per second.
				f := newFakeNchan(30*time.Millisecond, 3)
				srv := httptest.NewServer(f)
				defer srv.Close()
				cfg := fanoutConfig{
					targetConfig: targetConfig{Target: srv.URL}, API: apiNchan, Transport: transport, Client: client,
					Prefix: "fake", Channels: 2, Readers: 8, PerRead: 1, Messages: 30, Rate: 25, Size: 80, Publishers: 1,
					Warmup: 80 * time.Millisecond, Duration: time.Minute, Drain: 10 * time.Second, SetupTimeout: 10 * time.Second,
					UseStatus: true, ReadTimeout: 10 * time.Second, DialConcurrency: 4,
				}
				// A message published before the run is not this run's.
				if _, err := (&endpoint{base: srv.URL, client: srv.Client()}).nchanPublish(context.Background(), "fake-0", "earlier"); err != nil {
					t.Fatal(err)
				}
				rep, err := runFanout(context.Background(), cfg, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				total := int64(rep.WarmupMessages + cfg.Messages)
				if !rep.ok() || rep.Delivered != total*4 || rep.Foreign != 0 || rep.Reordered != 0 {
					t.Errorf("delivered %d of %d, lost %d, duplicated %d, reordered %d, foreign %d, ok %v (errors %v, %s)",
						rep.Delivered, total*4, rep.Lost, rep.Duplicated, rep.Reordered, rep.Foreign, rep.ok(), rep.Errors, rep.LastError)
				}
				if rep.Latency.Count != uint64(cfg.Messages*4) {
					t.Errorf("timed deliveries %d, want %d", rep.Latency.Count, cfg.Messages*4)
				}
				if f.timeouts.Load() == 0 {
					t.Error("no subscriber timed out: the test did not cover resuming after one")
				}
				if n := f.badRequests.Load(); n != 0 {
					t.Errorf("%d requests sent If-None-Match without If-Modified-Since", n)
				}
				for kind := range rep.Errors {
					if kind != "read_stream_ended" || transport != transportSSE {
						t.Errorf("errors: %v", rep.Errors)
						break
					}
				}
				if !strings.HasPrefix(rep.HeldCheck, "nchan_stub_status") {
					t.Errorf("held check %q, want nchan_stub_status", rep.HeldCheck)
				}
			})
		}
	}
}

func TestNchanConfigLimits(t *testing.T) {
	for _, tc := range []struct {
		spoil   func(*fanoutConfig)
		wantErr string
	}{
		{func(c *fanoutConfig) { c.API = apiNchan }, ""},
		{func(c *fanoutConfig) { c.API, c.Transport = apiNchan, transportSSE }, ""},
		{func(c *fanoutConfig) { c.API, c.PerRead = apiNchan, 2 }, "one channel per request"},
		{func(c *fanoutConfig) { c.API, c.MaxMessages = apiNchan, 5 }, "nchan_message_buffer_length"},
		{func(c *fanoutConfig) { c.API, c.Expvar = apiNchan, "http://127.0.0.1:1/debug/vars" }, "-expvar"},
		{func(c *fanoutConfig) { c.API = "mercure" }, `-api "mercure"`},
		{func(c *fanoutConfig) { c.Transport = "websocket" }, `-transport "websocket"`},
		{func(c *fanoutConfig) { c.OtherPIDs = []int{5} }, "-pid"},
		{func(c *fanoutConfig) { c.PID, c.OtherPIDs = 4, []int{5, 6} }, ""},
	} {
		c := validFanout()
		tc.spoil(&c)
		err := c.validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: validate() = %v, want %q", c, err, tc.wantErr)
		}
	}
}
