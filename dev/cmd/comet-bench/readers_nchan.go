package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// Nchan's readers (-api nchan). A reader reads one channel: Nchan reads
// several in one request only with a compound id whose message ids are
// compound too, which this tool does not speak.

// nchanPoll long-polls the reader's channel at the subscriber location from
// the channel's start marker, following Nchan's long-poll protocol: each
// request sends back the previous reply's Last-Modified and Etag as
// If-Modified-Since and If-None-Match (nchanCursor), and Nchan answers with
// the next message after that id, one message per reply (the default,
// without nchan_longpoll_multipart_response), or 408 when it held the
// request past nchan_subscriber_timeout with nothing new.
func (r *reader) nchanPoll(ctx context.Context) {
	p := r.p
	c := r.i % len(p.channels)
	path := nchanSubPathFor(p.channels[c])
	cur := cursorAt(p.nchanStart[c])
	lastID := []int64{p.nchanStart[c].order()}
	var body bytes.Buffer
	for r.pause(ctx) {
		status, h, err := r.pl.get(ctx, path, cur.header(), &body, r.firstWritten())
		now := p.clock.now()
		if err != nil {
			r.failed(ctx, err)
			continue
		}
		switch status {
		case http.StatusOK:
			// Without both fields the next request would ask for this
			// message again.
			if h.Get("Last-Modified") == "" || h.Get("Etag") == "" {
				r.failed(ctx, fmt.Errorf("%w: a message without Last-Modified and Etag", errBadReply))
				continue
			}
			cur.update(h)
			id, err := cur.id()
			if err != nil {
				r.failed(ctx, fmt.Errorf("%w: %w", errBadReply, err))
				continue
			}
			r.succeeded()
			p.receive(r.i, c, 0, body.String(), id.order(), lastID, now)
			p.wakeDrain()
		case http.StatusRequestTimeout, http.StatusNotModified:
			cur.update(h)
			r.succeeded()
		default:
			r.failed(ctx, &apiError{Status: status, Message: abbreviate(body.Bytes())})
		}
	}
}

// nchanStream reads the reader's channel as an EventSource stream from the
// subscriber location (Accept: text/event-stream): one event per message,
// its data the message, its id the message id "time:tag". The first request
// and every reconnection send the last id as Last-Event-ID, which Nchan
// reads as the message to start after (nchan_subscriber_last_message_id's
// default, $http_last_event_id).
func (r *reader) nchanStream(ctx context.Context) {
	p := r.p
	c := r.i % len(p.channels)
	lastEventID := p.nchanStart[c].String()
	lastID := []int64{p.nchanStart[c].order()}
	header := func() http.Header {
		return http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {lastEventID}}
	}
	path := nchanSubPathFor(p.channels[c])
	r.stream(ctx, func() string { return path }, header, func(ev sseEvent, now int64) error {
		id, err := parseNchanID(ev.ID)
		if err != nil {
			return fmt.Errorf("%w: event id: %w", errBadReply, err)
		}
		lastEventID = ev.ID
		p.receive(r.i, c, 0, string(ev.Data), id.order(), lastID, now)
		p.wakeDrain()
		return nil
	})
}
