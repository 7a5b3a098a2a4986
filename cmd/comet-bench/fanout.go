package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutConfig is one fan-out run; flags fill it in main.go, tests directly.
type fanoutConfig struct {
	targetConfig

	// Prefix names the channels: <Prefix>-0 ... <Prefix>-<Channels-1>.
	Prefix   string
	Channels int
	Readers  int
	// PerRead is how many channels each reader reads in one request.
	PerRead int
	// Messages is how many messages to publish after the warm-up.
	Messages int
	// Rate is messages per second.
	Rate float64
	// Size is the length of each message's content in bytes (at least the
	// tool's header, about 50 bytes).
	Size int
	// Publishers is how many publish requests may be in flight at once.
	Publishers int
	// MaxMessages is sent as max_messages when registering; 0 leaves the
	// server's default.
	MaxMessages int

	// Warmup is how long to publish before the measured messages; warm-up
	// messages are checked for loss and duplicates but not timed.
	Warmup time.Duration
	// Duration caps the publishing phase (warm-up included).
	Duration time.Duration
	// Drain is how long to wait after the last publish for deliveries.
	Drain time.Duration
	// SetupTimeout caps connecting the readers and seeing them held.
	SetupTimeout time.Duration
	// Settle is how long to wait after every reader's request went out,
	// when /status.json is not used to see them held.
	Settle time.Duration
	// UseStatus waits until /status.json's held_connections_count shows
	// every reader held, instead of Settle.
	UseStatus bool
	// ReadTimeout caps one read; it must be longer than the server's
	// http_timeout.
	ReadTimeout time.Duration

	// PID is the server's process id for memory figures; 0 skips them.
	PID int
	// Expvar is the URL of the server's Go expvar memstats (Caddy's admin
	// /debug/vars), for heap and stack figures; empty skips them.
	Expvar string
	// Connections caps the readers' connections; 0 means one per reader.
	Connections int
	// DialConcurrency caps connections being opened at once.
	DialConcurrency int
	// FileLimit is the open-file limit to check Readers against; 0 skips
	// the check.
	FileLimit uint64

	// Client is the readers' HTTP client: "lean" (the default: one
	// connection and goroutine per reader, see leanPoller) or "net/http".
	Client string

	// ProgressEvery is the interval of the progress line; 0 turns it off.
	ProgressEvery time.Duration
}

// Limits of a fan-out run.
const (
	// maxTallyBytes bounds the delivery ledger (one bit per reader and
	// message).
	maxTallyBytes = 1 << 30
	// spareFiles is what the tool needs open besides one connection per
	// reader: publishers, status, stdio, the runtime's own.
	spareFiles = 64
)

func (c *fanoutConfig) warmupMessages() int {
	return int(math.Ceil(c.Warmup.Seconds() * c.Rate))
}

// validate checks the config and says which value is wrong and why.
func (c *fanoutConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Channels < 1 {
		bad("-channels %d: need at least 1", c.Channels)
	}
	if c.Readers < 1 {
		bad("-readers %d: need at least 1", c.Readers)
	}
	if c.PerRead < 1 || (c.Channels >= 1 && c.PerRead > c.Channels) {
		bad("-channels-per-read %d: must be between 1 and -channels (%d)", c.PerRead, c.Channels)
	}
	if c.Messages < 1 {
		bad("-messages %d: need at least 1", c.Messages)
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		bad("-rate %v: must be a positive number of messages per second", c.Rate)
	}
	if c.Size < 0 {
		bad("-size %d: must not be negative", c.Size)
	}
	if c.Publishers < 1 {
		bad("-publishers %d: need at least 1", c.Publishers)
	}
	if c.MaxMessages < 0 {
		bad("-max-messages %d: must not be negative", c.MaxMessages)
	}
	if c.Warmup < 0 {
		bad("-warmup %v: must not be negative", c.Warmup)
	}
	if c.Duration <= 0 {
		bad("-duration %v: must be positive", c.Duration)
	}
	if c.Drain < 0 {
		bad("-drain %v: must not be negative", c.Drain)
	}
	if c.SetupTimeout <= 0 {
		bad("-setup-timeout %v: must be positive", c.SetupTimeout)
	}
	if c.Settle < 0 {
		bad("-settle %v: must not be negative", c.Settle)
	}
	if c.ReadTimeout <= 0 {
		bad("-read-timeout %v: must be positive", c.ReadTimeout)
	}
	switch c.Client {
	case "", "lean":
		if c.Connections != 0 {
			bad("-connections %d: applies to -client net/http only (a lean reader always has one connection)", c.Connections)
		}
	case "net/http":
		if c.Connections < 0 {
			bad("-connections %d: must not be negative", c.Connections)
		}
	default:
		bad("-client %q: want lean or net/http", c.Client)
	}
	if c.DialConcurrency < 0 {
		bad("-dial-concurrency %d: must not be negative", c.DialConcurrency)
	}
	if c.PID < 0 {
		bad("-pid %d: must not be negative", c.PID)
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "|") {
		bad("-prefix %q: must be non-empty and without '|'", c.Prefix)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if n := tallyBytes(c.Readers, c.warmupMessages()+c.Messages); n > maxTallyBytes {
		bad("-readers %d x %d messages (warm-up included) need %d MiB of delivery records; the limit is %d MiB",
			c.Readers, c.warmupMessages()+c.Messages, n>>20, maxTallyBytes>>20)
	}
	if c.FileLimit > 0 && uint64(c.Readers)+spareFiles > c.FileLimit {
		bad("-readers %d: each held read needs an open connection, and the open-file limit is %d (at most %d readers)",
			c.Readers, c.FileLimit, c.FileLimit-min(c.FileLimit, spareFiles))
	}
	return errors.Join(errs...)
}

// pollers returns what makes each reader's connection.
func (c *fanoutConfig) pollers(read *endpoint) (func() poller, error) {
	switch c.Client {
	case "", "lean":
		d, err := newLeanDialer(read, c.ReadTimeout, c.DialConcurrency, c.Insecure)
		if err != nil {
			return nil, err
		}
		return func() poller { return newLeanPoller(d) }, nil
	case "net/http":
		return func() poller { return httpPoller{ep: read} }, nil
	}
	return nil, fmt.Errorf("-client %q: want lean or net/http", c.Client)
}

// fanoutReport is the outcome of a fan-out run.
type fanoutReport struct {
	Target          string `json:"target"`
	PublishTarget   string `json:"publish_target"`
	RunID           string `json:"run_id"`
	Channels        int    `json:"channels"`
	Readers         int    `json:"readers"`
	ChannelsPerRead int    `json:"channels_per_read"`
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

	Memory  *memoryReport  `json:"memory,omitempty"`
	Runtime *runtimeReport `json:"go_runtime,omitempty"`

	SetupSeconds   float64 `json:"setup_seconds"`
	PublishSeconds float64 `json:"publish_seconds"`
	DrainSeconds   float64 `json:"drain_seconds"`
	// Interrupted is true when the run was stopped (Ctrl-C) before it
	// finished.
	Interrupted bool `json:"interrupted"`
}

// runFanout is a fan-out run: register the channels, hold the readers,
// publish, wait for the deliveries, report. Progress lines go to progress.
func runFanout(ctx context.Context, cfg fanoutConfig, progress io.Writer) (*fanoutReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	conns := cfg.Connections
	if conns == 0 {
		conns = cfg.Readers
	}
	read, pub, err := cfg.endpoints(ctx, conns, cfg.DialConcurrency)
	if err != nil {
		return nil, err
	}
	defer read.client.CloseIdleConnections()
	defer pub.client.CloseIdleConnections()
	read.client.Timeout = cfg.ReadTimeout

	rep := &fanoutReport{
		Target: read.base, PublishTarget: pub.base, RunID: newRunID(),
		Channels: cfg.Channels, Readers: cfg.Readers, ChannelsPerRead: cfg.PerRead,
		MessagesRequested: cfg.Messages, WarmupMessages: cfg.warmupMessages(), PublishRate: cfg.Rate,
	}
	setupStart := time.Now()

	names := make([]string, cfg.Channels)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", cfg.Prefix, i)
	}
	if err := registerAll(ctx, pub, names, cfg.MaxMessages); err != nil {
		return nil, err
	}
	// Readers start after a marker: message ids increase across the whole
	// hub, so every message published after the marker has a larger id and
	// since=marker misses none of them and returns nothing older. (A read
	// cannot tell the current last id without holding when there is nothing
	// new, and the clock-seeded ids of another host are not ours to guess.)
	since, err := pub.publish(ctx, names[0], "comet-bench marker run="+rep.RunID)
	if err != nil {
		return nil, fmt.Errorf("publishing the start marker: %w", err)
	}
	var baseHeld int64
	if cfg.UseStatus {
		if baseHeld, err = pub.heldConnections(ctx); err != nil {
			return nil, fmt.Errorf("%w (-status needs enable_status and the status permission on the publish target)", err)
		}
	}
	if cfg.PID > 0 {
		m, err := readProcMemory(cfg.PID)
		if err != nil {
			return nil, err
		}
		rep.Memory = &memoryReport{PID: cfg.PID, BeforeKiB: m.RSSKiB}
	}
	if cfg.Expvar != "" {
		u, err := checkBase(ctx, cfg.Expvar, cfg.AllowRemote)
		if err != nil {
			return nil, fmt.Errorf("-expvar: %w", err)
		}
		m, err := readRuntimeMemory(ctx, pub.client, u)
		if err != nil {
			return nil, fmt.Errorf("-expvar: %w", err)
		}
		rep.Runtime = &runtimeReport{URL: u, HeapBeforeKiB: int64(m.HeapInuse >> 10), StackBeforeKiB: int64(m.StackInuse >> 10)}
	}

	// Readers of each channel, to know how many deliveries a message owes.
	subscribers := make([]int, cfg.Channels)
	for i := range cfg.Readers {
		for _, c := range readerChannels(i, cfg.PerRead, cfg.Channels) {
			subscribers[c]++
		}
	}
	total := rep.WarmupMessages + cfg.Messages
	owed := func(seq int) int { return subscribers[seq%cfg.Channels] }

	clock := newRunClock()
	errs := &errorCounts{}
	sent := make([]atomic.Int64, total)
	newPoller, err := cfg.pollers(read)
	if err != nil {
		return nil, err
	}
	pool := &readerPool{
		newPoller: newPoller, channels: names, perRead: cfg.PerRead, runID: rep.RunID, clock: clock,
		sent: sent, warm: rep.WarmupMessages, tally: newTally(cfg.Readers, total),
		latency: newHistogram(), errs: errs,
		allStarted: make(chan struct{}), target: int64(cfg.Readers),
		delivered: make(chan struct{}, 1),
	}
	var expected atomic.Int64
	pubr := &publisher{
		ep: pub, channels: names, runID: rep.RunID, size: cfg.Size, rate: cfg.Rate,
		workers: cfg.Publishers, clock: clock, sent: sent, acked: make([]bool, total), errs: errs,
		onAck: func(seq int) { expected.Add(int64(owed(seq))) },
	}

	// Progress lines, until the run ends.
	var phase atomic.Value
	phase.Store("connect")
	stopProgress := startProgress(cfg.ProgressEvery, progress, func(elapsed time.Duration, readsPerSec float64) string {
		return fmt.Sprintf("[%5.1fs] %-7s readers %d/%d  published %d/%d  delivered %d/%d  dup %d  reads %.0f/s  errors %d",
			elapsed.Seconds(), phase.Load(), pool.started.Load(), cfg.Readers,
			pubr.published.Load(), total, pool.tally.delivered.Load(), expected.Load(),
			pool.tally.duplicated.Load(), readsPerSec, errs.total())
	}, pool.reads.Load)
	defer stopProgress()

	// The readers run until the report is made; ctx (Ctrl-C) only cuts the
	// phases short, so that what was measured is still reported.
	readCtx, stopReaders := context.WithCancel(context.WithoutCancel(ctx))
	var readers sync.WaitGroup
	defer func() {
		stopReaders()
		readers.Wait()
	}()
	for i := range cfg.Readers {
		readers.Go(func() { pool.read(readCtx, i, since) })
	}

	held, err := waitHeld(ctx, cfg, pool, pub, baseHeld)
	if err != nil {
		return nil, err
	}
	rep.HeldCheck = held
	rep.SetupSeconds = time.Since(setupStart).Seconds()
	if rep.Memory != nil {
		m, err := readProcMemory(cfg.PID)
		if err != nil {
			return nil, err
		}
		rep.Memory.HeldKiB = m.RSSKiB
		rep.Memory.PerHeldReadKiB = float64(m.RSSKiB-rep.Memory.BeforeKiB) / float64(cfg.Readers)
	}
	if rt := rep.Runtime; rt != nil {
		m, err := readRuntimeMemory(ctx, pub.client, rt.URL)
		if err != nil {
			return nil, fmt.Errorf("-expvar: %w", err)
		}
		rt.HeapHeldKiB, rt.StackHeldKiB = int64(m.HeapInuse>>10), int64(m.StackInuse>>10)
		rt.HeapPerHeldReadKiB = float64(rt.HeapHeldKiB-rt.HeapBeforeKiB) / float64(cfg.Readers)
		rt.StackPerHeldReadKiB = float64(rt.StackHeldKiB-rt.StackBeforeKiB) / float64(cfg.Readers)
	}

	phase.Store("publish")
	readsBefore := pool.reads.Load()
	pubStart := time.Now()
	pubCtx, cancelPub := context.WithTimeout(ctx, cfg.Duration)
	pubr.run(pubCtx, total)
	cancelPub()
	rep.PublishSeconds = time.Since(pubStart).Seconds()

	phase.Store("drain")
	drainStart := time.Now()
	rep.Complete = drain(ctx, cfg.Drain, pool, pubr.acked, owed)
	rep.DrainSeconds = time.Since(drainStart).Seconds()
	window := time.Since(pubStart).Seconds()
	rep.Reads = pool.reads.Load() - readsBefore
	rep.ReadsPerSecond = float64(rep.Reads) / window
	if rep.Memory != nil {
		if m, err := readProcMemory(cfg.PID); err == nil {
			rep.Memory.EndKiB, rep.Memory.PeakKiB = m.RSSKiB, m.PeakKiB
		} else {
			// The server died during the run: worth saying, not fatal.
			rep.Memory.EndError = err.Error()
		}
	}
	stopProgress()
	stopReaders()
	readers.Wait()

	rep.Interrupted = ctx.Err() != nil
	rep.PublishAttempted = pubr.attempted.Load()
	rep.Published = pubr.published.Load()
	rep.AchievedRate = achievedRate(sent, pubr.acked)
	rep.deliveryCounts = pool.tally.count(pubr.acked, owed)
	rep.Latency = pool.latency.summary()
	rep.Foreign = pool.foreign.Load()
	rep.Reordered = pool.reordered.Load()
	rep.Errors = errs.snapshot()
	if rep.Errors == nil {
		rep.Errors = map[string]int64{}
	}
	if s, ok := pubr.lastErr.Load().(string); ok {
		rep.LastError = s
	}
	return rep, nil
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

// registerAll registers the channels, a few requests at a time.
func registerAll(ctx context.Context, pub *endpoint, names []string, maxMessages int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(8, len(names)) {
		wg.Go(func() {
			for name := range next {
				if err := pub.registerChannel(ctx, name, maxMessages); err != nil {
					cancel(err)
				}
			}
		})
	}
	for _, name := range names {
		select {
		case next <- name:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// waitHeld waits until every reader's first request went out and the server
// holds them, and says how it knew.
func waitHeld(ctx context.Context, cfg fanoutConfig, pool *readerPool, pub *endpoint, baseHeld int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancel()
	select {
	case <-pool.allStarted:
	case <-ctx.Done():
		return "", fmt.Errorf("only %d of %d readers reached the server within -setup-timeout %v (errors: %v)",
			pool.started.Load(), cfg.Readers, cfg.SetupTimeout, pool.errs.snapshot())
	}
	if !cfg.UseStatus {
		t := time.NewTimer(cfg.Settle)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the readers to settle: %w", context.Cause(ctx))
		}
		return fmt.Sprintf("all requests sent, then %v settle", cfg.Settle), nil
	}
	// The server does not announce held reads; ask it every 100 ms.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var held int64
	for {
		n, err := pub.heldConnections(ctx)
		if err == nil {
			held = n - baseHeld
			if held >= int64(cfg.Readers) {
				return fmt.Sprintf("status.json: %d held (%d before the run)", n, baseHeld), nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return "", fmt.Errorf("only %d of %d reads held within -setup-timeout %v (is max_held_connections lower?)",
				held, cfg.Readers, cfg.SetupTimeout)
		}
	}
}

// drain waits until every acknowledged message reached every reader of its
// channel, for at most timeout, and reports whether they all did.
func drain(ctx context.Context, timeout time.Duration, pool *readerPool, acked []bool, owed func(int) int) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	next := 0 // messages before next are complete
	for {
		for next < len(acked) && (!acked[next] || pool.tally.receivers(next) >= int64(owed(next))) {
			next++
		}
		if next == len(acked) {
			return true
		}
		select {
		case <-pool.delivered:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// startProgress prints line() every interval until the returned stop is
// called (stop may be called more than once). reads feeds the reads/s
// figure.
func startProgress(every time.Duration, w io.Writer, line func(time.Duration, float64) string, reads func() int64) (stop func()) {
	if every <= 0 || w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := reads(), start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := reads()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				fmt.Fprintln(w, line(now.Sub(start), rate))
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
