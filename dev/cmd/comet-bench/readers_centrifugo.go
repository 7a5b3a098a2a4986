package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Centrifugo's readers (-api centrifugo): one uni_sse connection each,
// subscribed by its token to the reader's channels (several in one
// connection, as comet reads several in one request).

// centrifugoStream reads the reader's channels over uni_sse. Every
// connection, the first included, asks to recover each channel from where
// the reader is: the channel's start marker, then the last publication it
// got. The connect push then carries what was published in between, so a
// reconnection loses nothing the channel's history still holds.
func (r *reader) centrifugoStream(ctx context.Context) {
	p := r.p
	cc := p.cometChannels(r.i)
	token, err := centrifugoToken(p.tokenSecret, r.i, cc.names, time.Now())
	if err != nil {
		// The secret is a flag that was checked to be non-empty; signing
		// with HMAC does not fail otherwise.
		p.errs.add("read_token")
		return
	}
	pos := make([]centrifugoPosition, len(cc.mine))
	for j, c := range cc.mine {
		pos[j] = p.centrifugoStart[c]
	}
	subscribed := false
	path := func() string { return centrifugoConnectPath(token, cc.names, pos) }
	header := func() http.Header { return http.Header{"Accept": {"text/event-stream"}} }
	r.stream(ctx, path, header, func(ev sseEvent, now int64) error {
		var push centrifugoPush
		if err := json.Unmarshal(ev.Data, &push); err != nil {
			return fmt.Errorf("%w: push %q: %w", errBadReply, abbreviate(ev.Data), err)
		}
		switch {
		case push.Pub != nil:
			slot, ok := cc.slots[push.Channel]
			if !ok {
				p.errs.add("read_unrequested_channel")
				return nil
			}
			if err := r.centrifugoDeliver(cc, slot, *push.Pub, now); err != nil {
				return err
			}
			pos[slot].Offset = max(pos[slot].Offset, push.Pub.Offset)
			p.wakeDrain()
		case push.Connect != nil:
			if err := r.centrifugoConnected(cc, pos, push.Connect.Subs, now); err != nil {
				return err
			}
			if !subscribed {
				subscribed = true
				p.subscribed.Add(1)
			}
		case push.Disconnect != nil:
			return &centrifugoDisconnect{Code: push.Disconnect.Code, Reason: push.Disconnect.Reason}
		}
		// Anything else ("{}", the ping) carries nothing for the tool.
		return nil
	})
}

// centrifugoConnected takes the connect push's subscriptions: every channel
// of the reader must be there, recovered when it asked to recover; the
// publications recovered are delivered, and the positions move to the
// stream's top.
func (r *reader) centrifugoConnected(cc *cometChannels, pos []centrifugoPosition, subs map[string]centrifugoSubscribed, now int64) error {
	got := false
	for slot, ch := range cc.names {
		s, ok := subs[ch]
		if !ok {
			return fmt.Errorf("%w: the connect push has no subscription to %q (is it in the token's channels?)", errBadReply, ch)
		}
		if !s.Recoverable {
			return fmt.Errorf("%w: %q is not recoverable: its namespace needs history_size, history_ttl and force_recovery", errBadReply, ch)
		}
		if s.WasRecovering && !s.Recovered {
			// The history no longer reaches back to the reader's position
			// (or the epoch changed): what is missing counts as lost.
			r.p.errs.add("read_not_recovered")
		}
		for _, pub := range s.Publications {
			if err := r.centrifugoDeliver(cc, slot, pub, now); err != nil {
				return err
			}
			got = true
		}
		pos[slot] = centrifugoPosition{Offset: s.Offset, Epoch: s.Epoch}
	}
	if got {
		r.p.wakeDrain()
	}
	return nil
}

// centrifugoDeliver accounts for a publication on the reader's channel in
// slot: its data is the content as a JSON string, its offset orders it.
func (r *reader) centrifugoDeliver(cc *cometChannels, slot int, pub centrifugoPublication, now int64) error {
	var content string
	if err := json.Unmarshal(pub.Data, &content); err != nil {
		return fmt.Errorf("%w: publication data %q is not a JSON string: %w", errBadReply, abbreviate(pub.Data), err)
	}
	r.p.receive(r.i, cc.mine[slot], slot, content, int64(pub.Offset), cc.lastID, now)
	return nil
}
