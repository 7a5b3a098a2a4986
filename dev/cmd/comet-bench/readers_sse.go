package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Readers over Server-Sent Events (-transport sse).

// stream keeps an event stream open until ctx ends, and hands each event
// with data, and the time it arrived, to onEvent. path and header give the
// request's path and fields for each (re)connection, so that they can carry
// where the reader is. A stream that ends or fails is reopened, after the backoff when
// it failed; an end is counted as read_stream_ended, since neither server
// ends a stream unprompted but at its subscriber timeout.
func (r *reader) stream(ctx context.Context, path func() string, header func() http.Header, onEvent func(ev sseEvent, now int64) error) {
	for r.pause(ctx) {
		status, body, err := r.pl.open(ctx, path(), header(), r.firstWritten())
		if err != nil {
			r.failed(ctx, err)
			continue
		}
		if status != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(body, 4096))
			body.Close()
			r.failed(ctx, &apiError{Status: status, Message: abbreviate(b)})
			continue
		}
		err = r.events(body, onEvent)
		body.Close()
		if errors.Is(err, io.EOF) {
			if ctx.Err() == nil {
				r.p.errs.add("read_stream_ended")
			}
			continue
		}
		r.failed(ctx, err)
	}
}

// events reads a stream's events until it ends (io.EOF) or fails.
func (r *reader) events(body io.Reader, onEvent func(ev sseEvent, now int64) error) error {
	sr := newSSEReader(body)
	for {
		ev, err := sr.next()
		if err != nil {
			return err
		}
		now := r.p.clock.now()
		r.succeeded()
		if err := onEvent(ev, now); err != nil {
			return err
		}
	}
}

// ssePath is the path of comet's event stream of several channels.
func ssePath(channels []string) string {
	return strings.TrimSuffix(readPath(channels), ".json") + ".sse"
}

// cometStream reads the reader's channels from comet's event stream,
// GET /channels/IDS.sse?since=N: each event's data is the .json read reply
// of one publish batch (the first event, the catch-up) and its id that
// reply's last_id. A reconnection sends the last id as Last-Event-ID, which
// takes precedence over since.
func (r *reader) cometStream(ctx context.Context) {
	p := r.p
	cc := p.cometChannels(r.i)
	path := ssePath(cc.names) + "?since=" + strconv.FormatInt(p.since, 10)
	lastEventID := ""
	header := func() http.Header {
		h := http.Header{"Accept": {"text/event-stream"}}
		if lastEventID != "" {
			h.Set("Last-Event-Id", lastEventID)
		}
		return h
	}
	r.stream(ctx, func() string { return path }, header, func(ev sseEvent, now int64) error {
		rep, err := decodeReply(ev.Data)
		if err != nil {
			return fmt.Errorf("%w: %w", errBadReply, err)
		}
		if rep.ReturnCode < 0 {
			return &apiError{Status: http.StatusOK, Code: rep.ReturnCode, Message: rep.ErrorMessage}
		}
		r.deliver(cc, rep, now)
		if ev.ID != "" {
			lastEventID = ev.ID
		}
		return nil
	})
}
