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
	// api and transport are the protocol the readers speak.
	api, transport string
	// since is where comet readers start: the start marker's id.
	since int64
	// nchanStart is where Nchan readers start, by channel: the id of the
	// channel's start marker.
	nchanStart []nchanID
	// centrifugoStart is where Centrifugo readers start, by channel: the
	// position of the channel's start marker; tokenSecret signs their
	// connection tokens.
	centrifugoStart []centrifugoPosition
	tokenSecret     []byte
	channels        []string
	perRead         int
	runID           string
	clock           *runClock
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
	// subscribed counts Centrifugo readers that got their connect push,
	// which the server sends once their subscriptions are in place.
	subscribed atomic.Int64
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

// read is reader i: it reads its channels from the run's start until ctx
// ends, with the protocol of the run's API and transport.
func (p *readerPool) read(ctx context.Context, i int) {
	r := &reader{p: p, i: i, pl: p.newPoller()}
	defer r.pl.close()
	switch {
	case p.api == apiCentrifugo:
		r.centrifugoStream(ctx)
	case p.api == apiNchan && p.transport == transportSSE:
		r.nchanStream(ctx)
	case p.api == apiNchan:
		r.nchanPoll(ctx)
	case p.transport == transportSSE:
		r.cometStream(ctx)
	default:
		r.cometPoll(ctx)
	}
}

// reader is what one reader keeps across its requests, whatever the
// protocol: its connection, whether its first request went out, its
// backoff after errors.
type reader struct {
	p       *readerPool
	i       int
	pl      poller
	wrote   atomic.Bool
	backoff time.Duration
}

// firstWritten returns the hook for a request: the first request reports
// when it has been written, so that the orchestrator knows every reader
// has reached the server; later ones get nil.
func (r *reader) firstWritten() func() {
	if r.wrote.Load() {
		return nil
	}
	return func() {
		if r.wrote.CompareAndSwap(false, true) && r.p.started.Add(1) == r.p.target {
			close(r.p.allStarted)
		}
	}
}

// pause waits out the backoff, if any; false when ctx ended first.
func (r *reader) pause(ctx context.Context) bool {
	if r.backoff > 0 {
		t := time.NewTimer(r.backoff)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}

// failed counts a failed read (unless ctx ended, which is how readers
// stop) and lengthens the backoff.
func (r *reader) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	r.p.errs.add("read_" + errorKind(err))
	r.backoff = min(max(2*r.backoff, 50*time.Millisecond), 2*time.Second)
}

// succeeded clears the backoff and counts a read (a reply, or an event of
// a stream).
func (r *reader) succeeded() {
	r.backoff = 0
	r.p.reads.Add(1)
}

// cometChannels is a comet reader's channels and the newest message id it
// got on each.
type cometChannels struct {
	// mine are the channels' indexes, names their ids; slots maps an id to
	// its place in mine.
	mine  []int
	names []string
	slots map[string]int
	// lastID is the newest message id seen per channel of this reader.
	lastID []int64
}

func (p *readerPool) cometChannels(i int) *cometChannels {
	mine := readerChannels(i, p.perRead, len(p.channels))
	c := &cometChannels{mine: mine, names: make([]string, len(mine)), slots: make(map[string]int, len(mine)), lastID: make([]int64, len(mine))}
	for j, ch := range mine {
		c.names[j] = p.channels[ch]
		c.slots[p.channels[ch]] = j
	}
	return c
}

// deliver accounts for the messages of a comet reply (a read's, or an SSE
// event's data) that arrived at now.
func (r *reader) deliver(cc *cometChannels, rep reply, now int64) {
	got := false
	for ch, msgs := range rep.Messages {
		slot, ok := cc.slots[ch]
		if !ok {
			if len(msgs) > 0 {
				r.p.errs.add("read_unrequested_channel")
			}
			continue
		}
		for _, m := range msgs {
			r.p.receive(r.i, cc.mine[slot], slot, m.Content, m.ID, cc.lastID, now)
			got = true
		}
	}
	if got {
		r.p.wakeDrain()
	}
}

// wakeDrain tells the drain, without blocking, that a message arrived.
func (p *readerPool) wakeDrain() {
	select {
	case p.delivered <- struct{}{}:
	default:
	}
}

// cometPoll long-polls the comet API from the run's start marker, resuming
// after each reply with the reply's last_id.
func (r *reader) cometPoll(ctx context.Context) {
	p := r.p
	cc := p.cometChannels(r.i)
	path := readPath(cc.names) + "?since="
	since := p.since
	var body bytes.Buffer
	for r.pause(ctx) {
		rep, now, err := p.get(ctx, r.pl, path+strconv.FormatInt(since, 10), &body, r.firstWritten())
		if err != nil {
			r.failed(ctx, err)
			continue
		}
		r.succeeded()
		r.deliver(cc, rep, now)
		if rep.LastID > since {
			since = rep.LastID
		}
	}
}

// receive accounts for one message that reader i got on channel c.
// id orders the messages of a channel (comet's message id, or an Nchan id's
// order), for the reordering check; lastID[slot] is the newest so far.
func (p *readerPool) receive(i, c, slot int, content string, id int64, lastID []int64, now int64) {
	run, seq, ok := parseContent(content)
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
	if id <= lastID[slot] {
		p.reordered.Add(1)
	} else {
		lastID[slot] = id
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
	status, _, err := pl.get(ctx, path, nil, body, onWritten)
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
