package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// runFanout is a fan-out run: register the channels, hold the readers,
// publish, wait for the deliveries, report. Progress lines go to progress.
// Each step is a method of fanoutRun, in the order they run.
func runFanout(ctx context.Context, cfg fanoutConfig, progress io.Writer) (*fanoutReport, error) {
	r, err := newFanoutRun(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.closeIdle()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	stopProgress := r.startProgress(progress)
	defer stopProgress()
	stopReaders := r.startReaders(ctx)
	defer stopReaders()
	if err := r.waitHeld(ctx); err != nil {
		return nil, err
	}
	r.publish(ctx)
	r.drain(ctx)
	// The report reads counters the readers and the progress line share:
	// both stop first.
	stopProgress()
	stopReaders()
	r.report(ctx.Err() != nil)
	return r.rep, nil
}

// fanoutRun is what the steps of one fan-out run share.
type fanoutRun struct {
	cfg       fanoutConfig
	read, pub *endpoint
	rep       *fanoutReport
	// channels are the channel ids; subscribers[c] counts the readers of
	// channels[c], the deliveries each message on it owes.
	channels    []string
	subscribers []int
	// total is the number of messages, warm-up included.
	total int

	// since is the start marker's id, where every comet reader starts
	// reading; nchanStart is, by channel, the id of the channel's marker,
	// where Nchan readers start. baseHeld is the server's held reads before
	// the run (with -status).
	since, baseHeld int64
	nchanStart      []nchanID
	// centrifugoStart is, by channel, the position of the channel's
	// marker, where Centrifugo readers start.
	centrifugoStart []centrifugoPosition

	errs *errorCounts
	pool *readerPool
	pubr *publisher
	// expected is the deliveries owed by the messages acknowledged so far,
	// and phase the step in progress, for the progress line.
	expected atomic.Int64
	phase    atomic.Value

	// setupStart is when setting up began; pubStart and readsBefore open
	// the window that reads/s covers.
	setupStart  time.Time
	pubStart    time.Time
	readsBefore int64
	// cpuBefore is the server's CPU time, in seconds, when publishing
	// began (with -pid).
	cpuBefore float64
}

// newFanoutRun checks cfg, opens the read and publish endpoints, and
// starts the report with what is known before anything is sent.
func newFanoutRun(ctx context.Context, cfg fanoutConfig) (*fanoutRun, error) {
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
	read.client.Timeout = cfg.ReadTimeout
	if cfg.API == apiCentrifugo {
		pub.header.Set("X-Api-Key", cfg.APIKey)
	}
	r := &fanoutRun{cfg: cfg, read: read, pub: pub, errs: &errorCounts{}, setupStart: time.Now()}
	r.rep = &fanoutReport{
		Target: read.base, PublishTarget: pub.base, RunID: newRunID(),
		Channels: cfg.Channels, Readers: cfg.Readers, ChannelsPerRead: cfg.PerRead,
		API: cmp.Or(cfg.API, apiComet), Transport: cmp.Or(cfg.Transport, transportLongPoll), Client: cmp.Or(cfg.Client, "lean"),
		MessagesRequested: cfg.Messages, WarmupMessages: cfg.warmupMessages(), PublishRate: cfg.Rate,
	}
	r.total = r.rep.WarmupMessages + cfg.Messages
	r.channels = make([]string, cfg.Channels)
	for i := range r.channels {
		r.channels[i] = fmt.Sprintf("%s-%d", cfg.Prefix, i)
	}
	r.subscribers = make([]int, cfg.Channels)
	for i := range cfg.Readers {
		for _, c := range readerChannels(i, cfg.PerRead, cfg.Channels) {
			r.subscribers[c]++
		}
	}
	return r, nil
}

// closeIdle closes the endpoints' idle connections when the run is over.
func (r *fanoutRun) closeIdle() {
	r.pub.client.CloseIdleConnections()
	r.read.client.CloseIdleConnections()
}

// owed is how many deliveries message seq owes: the readers of its channel.
func (r *fanoutRun) owed(seq int) int { return r.subscribers[seq%len(r.subscribers)] }

// setUp readies the server's side (channels, marker, memory before the
// readers) and makes the readers and the publisher.
func (r *fanoutRun) setUp(ctx context.Context) error {
	if err := r.setUpChannels(ctx); err != nil {
		return err
	}
	if err := r.memoryBefore(ctx); err != nil {
		return err
	}
	return r.newReadersAndPublisher()
}

// setUpChannels is where the run speaks its API before any reader starts:
// it readies the channels, publishes the start markers and, with -status,
// counts the reads the server already holds.
func (r *fanoutRun) setUpChannels(ctx context.Context) error {
	switch r.cfg.API {
	case apiNchan:
		return r.setUpNchanChannels(ctx)
	case apiCentrifugo:
		return r.setUpCentrifugoChannels(ctx)
	}
	if err := registerAll(ctx, r.pub, r.channels, r.cfg.MaxMessages); err != nil {
		return err
	}
	// Readers start after a marker: message ids increase across the whole
	// hub, so every message published after the marker has a larger id and
	// since=marker misses none of them and returns nothing older. (A read
	// cannot tell the current last id without holding when there is nothing
	// new, and the clock-seeded ids of another host are not ours to guess.)
	var err error
	if r.since, err = r.pub.publish(ctx, r.channels[0], "comet-bench marker run="+r.rep.RunID); err != nil {
		return fmt.Errorf("publishing the start marker: %w", err)
	}
	return r.countBaseHeld(ctx)
}

// setUpNchanChannels publishes a start marker on every channel: Nchan's
// message ids are per channel, and a channel exists once a message is
// published to it. Each reader starts after its channel's marker.
func (r *fanoutRun) setUpNchanChannels(ctx context.Context) error {
	r.nchanStart = make([]nchanID, len(r.channels))
	for c, name := range r.channels {
		id, err := r.pub.nchanPublish(ctx, name, "comet-bench marker run="+r.rep.RunID)
		if err != nil {
			return fmt.Errorf("publishing the start marker: %w", err)
		}
		r.nchanStart[c] = id
	}
	return r.countBaseHeld(ctx)
}

// setUpCentrifugoChannels publishes a start marker on every channel, as
// for Nchan: Centrifugo's offsets are per channel. Each reader recovers its
// channels from their markers. An offset of 0 means the channel keeps no
// history, from which nothing can be recovered.
func (r *fanoutRun) setUpCentrifugoChannels(ctx context.Context) error {
	r.centrifugoStart = make([]centrifugoPosition, len(r.channels))
	for c, name := range r.channels {
		pos, err := r.pub.centrifugoPublish(ctx, name, "comet-bench marker run="+r.rep.RunID)
		if err != nil {
			return fmt.Errorf("publishing the start marker: %w", err)
		}
		if pos.Offset == 0 {
			return fmt.Errorf("publishing the start marker to %q: no offset in the reply: "+
				"the channels' namespace needs history_size, history_ttl and force_recovery", name)
		}
		r.centrifugoStart[c] = pos
	}
	return nil
}

// countBaseHeld counts, with -status, the reads the server holds before
// the run's readers connect. Centrifugo's readers count themselves (see
// heldNow): none are held before.
func (r *fanoutRun) countBaseHeld(ctx context.Context) error {
	if !r.cfg.UseStatus || r.cfg.API == apiCentrifugo {
		return nil
	}
	var err error
	if r.baseHeld, err = r.heldNow(ctx); err != nil {
		if r.cfg.API == apiNchan {
			return fmt.Errorf("%w (-status needs an nchan_stub_status location at %s on the publish target)", err, nchanStatusPath)
		}
		return fmt.Errorf("%w (-status needs enable_status and the status permission on the publish target)", err)
	}
	return nil
}

// heldNow asks the server how many reads it holds: comet's /status.json,
// Nchan's nchan_stub_status subscribers. Centrifugo tells each reader, in
// the connect push it sends once the reader's subscriptions are in place
// (its own count, in /api/info, is refreshed only every few seconds): the
// readers that got theirs are held.
func (r *fanoutRun) heldNow(ctx context.Context) (int64, error) {
	switch r.cfg.API {
	case apiNchan:
		return r.pub.nchanSubscribers(ctx)
	case apiCentrifugo:
		return r.pool.subscribed.Load(), nil
	}
	return r.pub.heldConnections(ctx)
}

// heldSource names what heldNow asks, for the report.
func (r *fanoutRun) heldSource() string {
	switch r.cfg.API {
	case apiNchan:
		return "nchan_stub_status"
	case apiCentrifugo:
		return "centrifugo connect pushes"
	}
	return "status.json"
}

// sender is how the publisher publishes a message in the run's API.
func (r *fanoutRun) sender() func(ctx context.Context, channel, content string) error {
	switch r.cfg.API {
	case apiNchan:
		return func(ctx context.Context, channel, content string) error {
			_, err := r.pub.nchanPublish(ctx, channel, content)
			return err
		}
	case apiCentrifugo:
		return func(ctx context.Context, channel, content string) error {
			_, err := r.pub.centrifugoPublish(ctx, channel, content)
			return err
		}
	}
	return func(ctx context.Context, channel, content string) error {
		_, err := r.pub.publish(ctx, channel, content)
		return err
	}
}

// newReadersAndPublisher makes the reader pool and the publisher, which
// share the run clock, the send times and the error counts.
func (r *fanoutRun) newReadersAndPublisher() error {
	newPoller, err := r.cfg.pollers(r.read)
	if err != nil {
		return err
	}
	clock := newRunClock()
	sent := make([]atomic.Int64, r.total)
	r.pool = &readerPool{
		newPoller: newPoller, api: r.cfg.API, transport: r.cfg.Transport, since: r.since, nchanStart: r.nchanStart,
		centrifugoStart: r.centrifugoStart, tokenSecret: []byte(r.cfg.TokenSecret),
		channels: r.channels, perRead: r.cfg.PerRead, runID: r.rep.RunID, clock: clock,
		sent: sent, warm: r.rep.WarmupMessages, tally: newTally(r.cfg.Readers, r.total),
		latency: newHistogram(), errs: r.errs,
		allStarted: make(chan struct{}), target: int64(r.cfg.Readers),
		delivered: make(chan struct{}, 1),
	}
	r.pubr = &publisher{
		send: r.sender(), channels: r.channels, runID: r.rep.RunID, size: r.cfg.Size, rate: r.cfg.Rate,
		workers: r.cfg.Publishers, clock: clock, sent: sent, acked: make([]bool, r.total), errs: r.errs,
		onAck: func(seq int) { r.expected.Add(int64(r.owed(seq))) },
	}
	return nil
}

// startProgress prints a progress line every -progress interval until the
// returned stop is called.
func (r *fanoutRun) startProgress(w io.Writer) (stop func()) {
	r.phase.Store("connect")
	return startProgress(r.cfg.ProgressEvery, w, r.progressLine, r.pool.reads.Load)
}

func (r *fanoutRun) progressLine(elapsed time.Duration, readsPerSec float64) string {
	return fmt.Sprintf("[%5.1fs] %-7s readers %d/%d  published %d/%d  delivered %d/%d  dup %d  reads %.0f/s  errors %d",
		elapsed.Seconds(), r.phase.Load(), r.pool.started.Load(), r.cfg.Readers,
		r.pubr.published.Load(), r.total, r.pool.tally.delivered.Load(), r.expected.Load(),
		r.pool.tally.duplicated.Load(), readsPerSec, r.errs.total())
}

// startReaders starts every reader from the marker. They run until stop is
// called (it may be called more than once), not until ctx ends: ctx
// (Ctrl-C) only cuts the phases short, so that what was measured is still
// reported.
func (r *fanoutRun) startReaders(ctx context.Context) (stop func()) {
	readCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var readers sync.WaitGroup
	for i := range r.cfg.Readers {
		readers.Go(func() { r.pool.read(readCtx, i) })
	}
	return func() {
		cancel()
		readers.Wait()
	}
}

// waitHeld waits until the server holds every reader, which ends the setup,
// and reads the server's memory then.
func (r *fanoutRun) waitHeld(ctx context.Context) error {
	held, err := r.heldCheck(ctx)
	if err != nil {
		return err
	}
	r.rep.HeldCheck = held
	r.rep.SetupSeconds = time.Since(r.setupStart).Seconds()
	return r.memoryHeld(ctx)
}

// heldCheck waits until every reader's first request went out and the
// server holds them, and says how it knew.
func (r *fanoutRun) heldCheck(ctx context.Context) (string, error) {
	cfg := r.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancel()
	select {
	case <-r.pool.allStarted:
	case <-ctx.Done():
		return "", fmt.Errorf("only %d of %d readers reached the server within -setup-timeout %v (errors: %v)",
			r.pool.started.Load(), cfg.Readers, cfg.SetupTimeout, r.errs.snapshot())
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
		n, err := r.heldNow(ctx)
		if err == nil {
			held = n - r.baseHeld
			if held >= int64(cfg.Readers) {
				return fmt.Sprintf("%s: %d held (%d before the run)", r.heldSource(), n, r.baseHeld), nil
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

// publish sends the messages at the rate, for at most -duration.
func (r *fanoutRun) publish(ctx context.Context) {
	r.phase.Store("publish")
	r.readsBefore = r.pool.reads.Load()
	r.cpuStart()
	r.pubStart = time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	r.pubr.run(ctx, r.total)
	r.rep.PublishSeconds = time.Since(r.pubStart).Seconds()
}

// drain waits, for at most -drain, until every acknowledged message reached
// every reader of its channel, then counts the reads since publishing began
// and reads the server's memory at the end.
func (r *fanoutRun) drain(ctx context.Context) {
	r.phase.Store("drain")
	drainStart := time.Now()
	r.rep.Complete = awaitDeliveries(ctx, r.cfg.Drain, r.pool, r.pubr.acked, r.owed)
	r.rep.DrainSeconds = time.Since(drainStart).Seconds()
	r.rep.Reads = r.pool.reads.Load() - r.readsBefore
	r.rep.ReadsPerSecond = float64(r.rep.Reads) / time.Since(r.pubStart).Seconds()
	r.cpuEnd()
	r.memoryEnd()
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

// awaitDeliveries waits until every acknowledged message reached every
// reader of its channel, for at most timeout, and reports whether they all
// did.
func awaitDeliveries(ctx context.Context, timeout time.Duration, pool *readerPool, acked []bool, owed func(int) int) bool {
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
