package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// readerChannels is which channels reader i reads: perRead consecutive ones
// starting at i, wrapping around, so readers spread evenly over channels.
func readerChannels(i, perRead, channels int) []int {
	out := make([]int, perRead)
	for j := range out {
		out[j] = (i + j) % channels
	}
	return out
}

// readerPool runs the long-poll readers of a fan-out run and records what
// they receive.
type readerPool struct {
	// newPoller gives each reader its connection.
	newPoller func() poller
	channels  []string
	perRead   int
	runID     string
	clock     *runClock
	// sent is the publisher's send times, by message seq.
	sent []atomic.Int64
	// warm messages (seq < warm) are checked for loss and duplicates but
	// not timed.
	warm    int
	tally   *tally
	latency *histogram
	errs    *errorCounts

	// reads counts completed reads (a 200 reply with return_code 1).
	reads atomic.Int64
	// started counts readers whose first request has been written to the
	// server; allStarted is closed when it reaches target.
	started    atomic.Int64
	target     int64
	allStarted chan struct{}
	// delivered gets a value (without blocking) after every reply that
	// brought a message, to wake the drain.
	delivered chan struct{}
	// foreign counts messages on our channels that this run did not
	// publish (someone else's, or another run's).
	foreign atomic.Int64
	// reordered counts messages that came with an id lower than one the
	// reader had already got on that channel.
	reordered atomic.Int64
}

// read is reader i: it long-polls its channels from since until ctx ends,
// resuming after each reply with the reply's last_id.
func (p *readerPool) read(ctx context.Context, i int, since int64) {
	mine := readerChannels(i, p.perRead, len(p.channels))
	names := make([]string, len(mine))
	// slots maps a channel name to its place in mine.
	slots := make(map[string]int, len(mine))
	for j, c := range mine {
		names[j] = p.channels[c]
		slots[p.channels[c]] = j
	}
	path := readPath(names) + "?since="
	// lastID is the newest message id seen per channel of this reader.
	lastID := make([]int64, len(mine))
	var body bytes.Buffer
	backoff := time.Duration(0)
	pl := p.newPoller()
	defer pl.close()

	// The first request reports when it has been written, so that the
	// orchestrator knows every reader has reached the server.
	var wrote atomic.Bool
	onWritten := func() {
		if wrote.CompareAndSwap(false, true) && p.started.Add(1) == p.target {
			close(p.allStarted)
		}
	}

	for ctx.Err() == nil {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		var hook func()
		if !wrote.Load() {
			hook = onWritten
		}
		r, now, err := p.get(ctx, pl, path+strconv.FormatInt(since, 10), &body, hook)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.errs.add("read_" + errorKind(err))
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			continue
		}
		backoff = 0
		p.reads.Add(1)
		got := false
		for ch, msgs := range r.Messages {
			slot, ok := slots[ch]
			if !ok {
				if len(msgs) > 0 {
					p.errs.add("read_unrequested_channel")
				}
				continue
			}
			for _, m := range msgs {
				p.receive(i, mine[slot], slot, m, lastID, now)
				got = true
			}
		}
		if got {
			select {
			case p.delivered <- struct{}{}:
			default:
			}
		}
		if r.LastID > since {
			since = r.LastID
		}
	}
}

// receive accounts for one message that reader i got on channel c.
func (p *readerPool) receive(i, c, slot int, m replyMessage, lastID []int64, now int64) {
	run, seq, ok := parseContent(m.Content)
	if !ok || run != p.runID || seq >= len(p.sent) {
		p.foreign.Add(1)
		return
	}
	if seq%len(p.channels) != c {
		p.errs.add("read_wrong_channel")
		return
	}
	if p.tally.deliver(i, seq) {
		return // counted as a duplicate, not also as out of order
	}
	if m.ID <= lastID[slot] {
		p.reordered.Add(1)
	} else {
		lastID[slot] = m.ID
	}
	if seq < p.warm {
		return
	}
	if sent := p.sent[seq].Load(); sent > 0 {
		p.latency.record(time.Duration(now - sent))
	}
}

// get performs one read and decodes its reply, reusing body's memory. now
// is when the reply had arrived, on the run clock.
func (p *readerPool) get(ctx context.Context, pl poller, path string, body *bytes.Buffer, onWritten func()) (r reply, now int64, err error) {
	status, err := pl.get(ctx, path, body, onWritten)
	now = p.clock.now()
	if err != nil {
		return r, now, err
	}
	r, err = decodeReply(body.Bytes())
	switch {
	case err != nil && status == http.StatusOK:
		return r, now, fmt.Errorf("%w: %w", errBadReply, err)
	case status != http.StatusOK:
		return r, now, &apiError{Status: status, Code: r.ReturnCode, Message: r.ErrorMessage}
	case r.ReturnCode < 0:
		return r, now, &apiError{Status: status, Code: r.ReturnCode, Message: r.ErrorMessage}
	}
	return r, now, nil
}
