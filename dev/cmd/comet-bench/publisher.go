package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// contentPrefix starts every message the tool publishes; the run id after it
// tells this run's messages from anyone else's on the same channels.
const contentPrefix = "comet-bench run="

// runIDLen is the length of a run id (hex).
const runIDLen = 8

// messageContent is the content of message seq: the run id, the sequence
// number and the wall-clock send time (for people reading the channel; the
// tool itself times with its monotonic clock), padded with 'x' to size bytes.
func messageContent(run string, seq int, sent time.Time, size int) string {
	s := contentPrefix + run + " seq=" + strconv.Itoa(seq) + " t=" + strconv.FormatInt(sent.UnixNano(), 10) + " "
	if pad := size - len(s); pad > 0 {
		s += strings.Repeat("x", pad)
	}
	return s
}

// parseContent returns the run id and sequence number of a message published
// by messageContent; ok is false for any other content.
func parseContent(content string) (run string, seq int, ok bool) {
	rest, found := strings.CutPrefix(content, contentPrefix)
	if !found || len(rest) < runIDLen {
		return "", 0, false
	}
	run, rest = rest[:runIDLen], rest[runIDLen:]
	rest, found = strings.CutPrefix(rest, " seq=")
	if !found {
		return "", 0, false
	}
	end := strings.IndexByte(rest, ' ')
	if end < 0 {
		end = len(rest)
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return run, n, true
}

// publisher publishes a run's messages at a steady rate. Message seq goes to
// channel seq % len(channels).
type publisher struct {
	// send publishes one message, in the run's API.
	send     func(ctx context.Context, channel, content string) error
	channels []string
	runID    string
	size     int
	rate     float64
	workers  int
	clock    *runClock

	// sent[seq] is when message seq was sent, on the run clock (0: not
	// yet); readers load it to time the receipt.
	sent []atomic.Int64
	// acked[seq] is whether the server acknowledged message seq. Each
	// element is written by one worker and read after run returns.
	acked []bool
	// onAck is called for every acknowledged message, from the worker that
	// sent it.
	onAck func(seq int)

	attempted atomic.Int64
	published atomic.Int64
	errs      *errorCounts
	lastErr   atomic.Value // string
}

// run publishes messages 0..total-1, message i at start+i/rate, until all are
// sent or ctx ends. When the server is slower than the rate the schedule
// slips and the messages behind it go out back to back, so the rate is kept
// on average without ever overlapping more than workers requests.
func (p *publisher) run(ctx context.Context, total int) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(p.workers, 1) {
		wg.Go(func() {
			for seq := range jobs {
				p.publishOne(ctx, seq)
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)

	start := time.Now()
	interval := time.Duration(float64(time.Second) / p.rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for seq := range total {
		if wait := time.Until(start.Add(time.Duration(seq) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case jobs <- seq:
		case <-ctx.Done():
			return
		}
	}
}

func (p *publisher) publishOne(ctx context.Context, seq int) {
	if ctx.Err() != nil {
		return
	}
	channel := p.channels[seq%len(p.channels)]
	content := messageContent(p.runID, seq, time.Now(), p.size)
	p.attempted.Add(1)
	p.sent[seq].Store(p.clock.now())
	if err := p.send(ctx, channel, content); err != nil {
		if ctx.Err() == nil {
			p.errs.add("publish_" + errorKind(err))
			p.lastErr.Store(err.Error())
		}
		return
	}
	p.acked[seq] = true
	p.published.Add(1)
	if p.onAck != nil {
		p.onAck(seq)
	}
}

// runClock is a monotonic clock shared by the publisher and the readers, in
// nanoseconds since the run started; it starts at 1 so that 0 can mean "not
// yet".
type runClock struct{ start time.Time }

func newRunClock() *runClock { return &runClock{start: time.Now().Add(-1)} }

func (c *runClock) now() int64 { return int64(time.Since(c.start)) }

// newRunID returns a random run id.
func newRunID() string { return fmt.Sprintf("%08x", rand.Uint32()) }
