package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

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
