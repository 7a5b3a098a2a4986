package main

import (
	"encoding/json"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// reportRun is a run whose readers and publisher have finished: 3 readers
// over 2 channels (readers 0 and 2 on channel 0, reader 1 on channel 1) and
// messages published 50 ms apart, the first three acknowledged.
func reportRun(messages int) *fanoutRun {
	errs := &errorCounts{}
	sent := make([]atomic.Int64, messages)
	for i := range sent {
		sent[i].Store(int64(1 + i*50*int(time.Millisecond)))
	}
	acked := make([]bool, messages)
	for i := range min(3, messages) {
		acked[i] = true
	}
	return &fanoutRun{
		rep: &fanoutReport{}, channels: []string{"c0", "c1"}, subscribers: []int{2, 1}, total: messages, errs: errs,
		pool: &readerPool{tally: newTally(3, messages), latency: newHistogram(), errs: errs},
		pubr: &publisher{sent: sent, acked: acked, errs: errs},
	}
}

// The report puts the readers' and the publisher's counts in their places:
// loss and duplicates against the channels' readers, the latency
// percentiles of the recorded receipts, the rate of the acknowledged sends.
func TestRunReport(t *testing.T) {
	r := reportRun(4)
	deliveries := []struct{ reader, seq int }{
		{0, 0}, {2, 0}, {0, 0}, // message 0 (channel 0): both readers, one twice
		{1, 1}, // message 1 (channel 1): its one reader
		{0, 2}, // message 2 (channel 0): reader 2 missed it
		{1, 3}, // message 3 was not acknowledged but arrived
	}
	for _, d := range deliveries {
		r.pool.tally.deliver(d.reader, d.seq)
	}
	for us := 1; us <= 1000; us++ {
		r.pool.latency.record(time.Duration(us) * time.Microsecond)
	}
	r.pool.foreign.Add(2)
	r.pool.reordered.Add(1)
	r.pubr.attempted.Store(4)
	r.pubr.published.Store(3)
	r.errs.add("publish_http_503")
	r.pubr.lastErr.Store("HTTP 503, return_code 0: busy")

	r.report(true)
	rep := r.rep
	want := deliveryCounts{Expected: 2 + 1 + 2, Delivered: 2 + 1 + 1, Lost: 1, Duplicated: 1, Unacknowledged: 1}
	if rep.deliveryCounts != want {
		t.Errorf("deliveries = %+v, want %+v", rep.deliveryCounts, want)
	}
	if l, want := rep.Latency, (latencySummary{Count: 1000, P50: 0.5, P90: 0.9, P99: 0.99, Max: 1}); l != want {
		t.Errorf("latency = %+v, want %+v", l, want)
	}
	// Three acknowledged sends 50 ms apart: two intervals in 100 ms.
	if math.Abs(rep.AchievedRate-20) > 1e-9 {
		t.Errorf("achieved rate = %v, want 20", rep.AchievedRate)
	}
	if !rep.Interrupted || rep.PublishAttempted != 4 || rep.Published != 3 || rep.Foreign != 2 || rep.Reordered != 1 {
		t.Errorf("interrupted %v, attempted %d, published %d, foreign %d, reordered %d; want true, 4, 3, 2, 1",
			rep.Interrupted, rep.PublishAttempted, rep.Published, rep.Foreign, rep.Reordered)
	}
	if rep.Errors["publish_http_503"] != 1 || rep.LastError != "HTTP 503, return_code 0: busy" {
		t.Errorf("errors %v, last error %q", rep.Errors, rep.LastError)
	}
}

// A run without errors reports an empty set, which -json prints as {}, not
// null.
func TestRunReportNoErrors(t *testing.T) {
	r := reportRun(0)
	r.report(false)
	b, err := json.Marshal(r.rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"errors":{}`) || r.rep.LastError != "" {
		t.Errorf("report of a run without errors: %s", b)
	}
}

func TestAchievedRate(t *testing.T) {
	sent := make([]atomic.Int64, 5)
	for i := range sent {
		sent[i].Store(int64(1 + i*50*int(time.Millisecond))) // 20/s
	}
	// Message 4 failed: four messages over 150 ms.
	if got := achievedRate(sent, []bool{true, true, true, true, false}); math.Abs(got-20) > 1e-9 {
		t.Errorf("achievedRate = %v, want 20", got)
	}
	if got := achievedRate(sent, []bool{true, false, false, false, false}); got != 0 {
		t.Errorf("achievedRate of one message = %v, want 0", got)
	}
}

func TestReportOK(t *testing.T) {
	good := fanoutReport{MessagesRequested: 10, WarmupMessages: 2, Published: 12, Complete: true}
	if !good.ok() {
		t.Fatal("a clean run is not ok")
	}
	for name, spoil := range map[string]func(*fanoutReport){
		"lost":        func(r *fanoutReport) { r.Lost = 1 },
		"duplicated":  func(r *fanoutReport) { r.Duplicated = 1 },
		"reordered":   func(r *fanoutReport) { r.Reordered = 1 },
		"incomplete":  func(r *fanoutReport) { r.Complete = false },
		"publish gap": func(r *fanoutReport) { r.Published = 11 },
	} {
		r := good
		spoil(&r)
		if r.ok() {
			t.Errorf("%s: the run counts as ok", name)
		}
	}
}
