package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Nchan's side of a run (-api nchan): nginx with the Nchan module, a
// publisher location at <publish-target>/pub, a subscriber location at
// <target>/sub (long-poll, and EventSource for -transport sse), the channel
// given as ?id=, and with -status an nchan_stub_status location at
// <publish-target>/nchan_status. scripts/bench-peers.sh writes such an
// nginx.conf.
const (
	nchanPubPath    = "/pub"
	nchanSubPath    = "/sub"
	nchanStatusPath = "/nchan_status"
)

// nchanID is an Nchan message id of a single channel: the message's time in
// seconds and its tag, its place among the messages of that second. Nchan
// writes it "time:tag"; a long-poll reply carries the time as Last-Modified
// and the tag as Etag.
type nchanID struct {
	Time int64
	Tag  int
}

func (id nchanID) String() string { return strconv.FormatInt(id.Time, 10) + ":" + strconv.Itoa(id.Tag) }

// order is the id as one number that grows with the id, for the
// reordering check (tags are 16-bit in Nchan).
func (id nchanID) order() int64 { return id.Time<<16 | int64(id.Tag&0xffff) }

// parseNchanID parses "time:tag".
func parseNchanID(s string) (nchanID, error) {
	t, tag, ok := strings.Cut(s, ":")
	if !ok {
		return nchanID{}, fmt.Errorf("nchan message id %q: want time:tag", s)
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil || sec < 0 {
		return nchanID{}, fmt.Errorf("nchan message id %q: bad time", s)
	}
	n, err := strconv.Atoi(tag)
	if err != nil || n < 0 {
		return nchanID{}, fmt.Errorf("nchan message id %q: bad tag (a multi-channel id?)", s)
	}
	return nchanID{Time: sec, Tag: n}, nil
}

// nchanCursor is where a long-poll reader is in its channel, in the form
// Nchan's long-poll protocol carries it: the Last-Modified and Etag of the
// previous reply, sent back as If-Modified-Since and If-None-Match, which is
// what Nchan's own client (NchanSubscriber.js) does.
type nchanCursor struct {
	lastModified, etag string
}

// cursorAt is the cursor that reads the messages after id.
func cursorAt(id nchanID) nchanCursor {
	return nchanCursor{lastModified: time.Unix(id.Time, 0).UTC().Format(http.TimeFormat), etag: strconv.Itoa(id.Tag)}
}

// header is the request header fields that send the cursor back.
func (c nchanCursor) header() http.Header {
	return http.Header{"If-Modified-Since": {c.lastModified}, "If-None-Match": {c.etag}}
}

// update takes the fields a reply carries, each one only if present, as
// NchanSubscriber.js does: Nchan's 408 (subscriber timeout) reply carries an
// Etag but no Last-Modified (nginx drops it on a status other than 200),
// and the reader then asks again from where it was.
func (c *nchanCursor) update(h http.Header) {
	if v := h.Get("Last-Modified"); v != "" {
		c.lastModified = v
	}
	if v := h.Get("Etag"); v != "" {
		c.etag = v
	}
}

// id is the message id the cursor is at.
func (c nchanCursor) id() (nchanID, error) {
	t, err := http.ParseTime(c.lastModified)
	if err != nil {
		return nchanID{}, fmt.Errorf("nchan Last-Modified %q: %w", c.lastModified, err)
	}
	tag, err := strconv.Atoi(c.etag)
	if err != nil || tag < 0 {
		return nchanID{}, fmt.Errorf("nchan Etag %q: not a single channel's tag", c.etag)
	}
	return nchanID{Time: t.Unix(), Tag: tag}, nil
}

// nchanSubPathFor is the subscriber path of a channel.
func nchanSubPathFor(channel string) string { return nchanSubPath + "?id=" + url.QueryEscape(channel) }

// nchanPublish publishes content to a channel with a POST to the publisher
// location, and returns the message's id. Nchan answers 201 Created when
// the channel has subscribers and 202 Accepted when it has none, with the
// channel's info (JSON when asked for).
func (e *endpoint) nchanPublish(ctx context.Context, channel, content string) (nchanID, error) {
	fail := func(err error) (nchanID, error) {
		return nchanID{}, fmt.Errorf("publishing to %q: %w", channel, err)
	}
	req, err := e.newRequest(ctx, http.MethodPost, nchanPubPath+"?id="+url.QueryEscape(channel), strings.NewReader(content))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		return fail(&apiError{Status: resp.StatusCode, Message: abbreviate(b)})
	}
	var info struct {
		LastMessageID string `json:"last_message_id"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return fail(fmt.Errorf("%w: channel info %q: %w", errBadReply, abbreviate(b), err))
	}
	id, err := parseNchanID(info.LastMessageID)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", errBadReply, err))
	}
	return id, nil
}

// nchanSubscribers reads the subscribers count of nchan_stub_status: every
// subscriber of every worker.
func (e *endpoint) nchanSubscribers(ctx context.Context) (int64, error) {
	req, err := e.newRequest(ctx, http.MethodGet, nchanStatusPath, nil)
	if err != nil {
		return 0, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading nchan_stub_status: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("reading nchan_stub_status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reading nchan_stub_status: %w", &apiError{Status: resp.StatusCode, Message: abbreviate(b)})
	}
	return parseStubStatus(b)
}

// parseStubStatus finds "subscribers: N" in nchan_stub_status's lines.
func parseStubStatus(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "subscribers:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%w: nchan_stub_status %q has no subscribers line", errBadReply, abbreviate(b))
}
