package main

import (
	"sync/atomic"
	"time"
)

// fanoutReport is the outcome of a fan-out run.
type fanoutReport struct {
	Target          string `json:"target"`
	PublishTarget   string `json:"publish_target"`
	RunID           string `json:"run_id"`
	Channels        int    `json:"channels"`
	Readers         int    `json:"readers"`
	ChannelsPerRead int    `json:"channels_per_read"`
	// API, Transport and Client are what the readers spoke and with what.
	API       string `json:"api"`
	Transport string `json:"transport"`
	Client    string `json:"client"`
	// HeldCheck says how the tool knew the readers were held.
	HeldCheck string `json:"held_check"`

	MessagesRequested int     `json:"messages_requested"`
	WarmupMessages    int     `json:"warmup_messages"`
	PublishAttempted  int64   `json:"publish_attempted"`
	Published         int64   `json:"published"`
	PublishRate       float64 `json:"publish_rate"`
	AchievedRate      float64 `json:"achieved_rate"`

	deliveryCounts
	// Complete is true when every acknowledged message reached every
	// reader of its channel before the drain timeout.
	Complete  bool           `json:"complete"`
	Latency   latencySummary `json:"latency"`
	Foreign   int64          `json:"foreign"`
	Reordered int64          `json:"reordered"`

	// Reads counts completed reads while publishing and draining;
	// ReadsPerSecond divides them by that time.
	Reads          int64            `json:"reads"`
	ReadsPerSecond float64          `json:"reads_per_second"`
	Errors         map[string]int64 `json:"errors"`
	LastError      string           `json:"last_error,omitempty"`

	Memory *memoryReport `json:"memory,omitempty"`
	// CPU is the server's CPU time per delivery, with -pid.
	CPU     *cpuReport     `json:"cpu,omitempty"`
	Runtime *runtimeReport `json:"go_runtime,omitempty"`

	SetupSeconds   float64 `json:"setup_seconds"`
	PublishSeconds float64 `json:"publish_seconds"`
	DrainSeconds   float64 `json:"drain_seconds"`
	// Interrupted is true when the run was stopped (Ctrl-C) before it
	// finished.
	Interrupted bool `json:"interrupted"`
}

// report fills in what the run counted and timed, once the readers and
// the publisher have stopped; interrupted says the run was cut short.
func (r *fanoutRun) report(interrupted bool) {
	rep, pool, pubr := r.rep, r.pool, r.pubr
	rep.Interrupted = interrupted
	rep.PublishAttempted = pubr.attempted.Load()
	rep.Published = pubr.published.Load()
	rep.AchievedRate = achievedRate(pubr.sent, pubr.acked)
	rep.deliveryCounts = pool.tally.count(pubr.acked, r.owed)
	r.cpuPerDelivery()
	rep.Latency = pool.latency.summary()
	rep.Foreign = pool.foreign.Load()
	rep.Reordered = pool.reordered.Load()
	// An empty map rather than none, so that -json prints "errors": {}.
	rep.Errors = r.errs.snapshot()
	if rep.Errors == nil {
		rep.Errors = map[string]int64{}
	}
	if s, ok := pubr.lastErr.Load().(string); ok {
		rep.LastError = s
	}
}

// achievedRate is the publish rate the run kept: acknowledged messages
// over the time from the first send to the last, the same measure as the
// asked rate (n messages at rate r span (n-1)/r seconds).
func achievedRate(sent []atomic.Int64, acked []bool) float64 {
	var n int
	var first, last int64
	for seq, ok := range acked {
		if !ok {
			continue
		}
		t := sent[seq].Load()
		if n == 0 || t < first {
			first = t
		}
		last = max(last, t)
		n++
	}
	if n < 2 || last <= first {
		return 0
	}
	return float64(n-1) / time.Duration(last-first).Seconds()
}

// ok reports whether the run delivered everything it was asked to: every
// message published and acknowledged, and every one received by every
// reader of its channel exactly once and in order.
func (r *fanoutReport) ok() bool {
	return r.Complete && r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 &&
		r.Published == int64(r.MessagesRequested+r.WarmupMessages)
}
