package hub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ReadRequest is a read as the API receives it.
type ReadRequest struct {
	// Channels is the channel list, ids separated by '|'.
	Channels string
	// ClientID is the reader's client id; HasClientID tells an empty one
	// from none.
	ClientID    string
	HasClientID bool
	// Since is the last id the reader has seen.
	Since int64
}

// Reply is the answer to a read.
type Reply struct {
	ReadResult
	// Reason says why a read without messages was answered.
	Reason ReleaseReason
}

// ReleaseReason says why a held read was answered.
type ReleaseReason uint8

const (
	// ReleasedMessages: there were messages.
	ReleasedMessages ReleaseReason = iota
	// ReleasedTimeout: HTTPTimeout passed.
	ReleasedTimeout
	// ReleasedDeleted: a channel of the read was deleted.
	ReleasedDeleted
	// ReleasedStopped: the caller's stop channel closed (server shutdown or
	// reload) or the hub closed.
	ReleasedStopped
	// ReleasedCanceled: the request's context ended (client went away).
	ReleasedCanceled
	// ReleasedUnavailable: the store failed while the read was held (Redis
	// went away). The reader gets an empty reply and comes back with its
	// since; the store reports the outage.
	ReleasedUnavailable
)

var releaseReasons = [...]string{"messages", "timeout", "deleted", "stopped", "canceled", "unavailable"}

func (r ReleaseReason) String() string {
	if int(r) < len(releaseReasons) {
		return releaseReasons[r]
	}
	return "ReleaseReason(" + strconv.Itoa(int(r)) + ")"
}

// Read answers a read: at once when any readable requested channel has
// messages newer than Since, otherwise when one gets a message, a channel of
// the read is deleted, HTTPTimeout passes, ctx ends or stop closes. The last
// four answer with no messages and a LastID to continue from.
func (h *Hub) Read(ctx context.Context, req ReadRequest, stop <-chan struct{}) (Reply, error) {
	cfg := h.config.Load()
	q, err := parseRead(req, cfg.MaxChannelsPerRead)
	if err != nil {
		return Reply{}, err
	}
	exp := cfg.expiry()
	key := flightKey(q)
	res, err := h.reread(ctx, key, q, exp, h.ticks.Add(1))
	if err != nil || res.HasMessages() {
		return Reply{ReadResult: res}, wrapRead(err, q)
	}
	// A since beyond the newest id is clamped once, here: the read then
	// waits for messages newer than the hub's newest. Clamping again at each
	// later snapshot would move since past the very messages that wake it.
	if q.Since != res.Since {
		q.Since = res.Since
		key = flightKey(q)
	}
	// A cheap refusal first, so that an overloaded hub does not register
	// and look again for reads it will turn away; the check that counts is
	// below.
	if cfg.MaxHeldConnections > 0 && h.held.Load() >= int64(cfg.MaxHeldConnections) {
		return Reply{}, ErrTooManyHeld
	}

	w := &waiter{signal: make(chan struct{}, 1), channels: q.Channels, clientID: q.ClientID}
	h.waiters.add(w)
	defer h.waiters.remove(w)
	// The snapshot comes after registering, so a publish it misses
	// notifies the waiter; the first snapshot above only saves the
	// registration when messages are already there.
	if res, err = h.reread(ctx, key, q, exp, h.ticks.Add(1)); err != nil || res.HasMessages() {
		return Reply{ReadResult: res}, wrapRead(err, q)
	}
	// The read counts as held only from here, registered and having looked
	// after registering: Held() == n then means n reads wait for an event
	// (a publish, a deletion, a stop), which the held-reads metric and the
	// tests rely on.
	if n := h.held.Add(1); cfg.MaxHeldConnections > 0 && n > int64(cfg.MaxHeldConnections) {
		h.held.Add(-1)
		return Reply{}, ErrTooManyHeld
	}
	defer h.held.Add(-1)
	timeout := h.deadlines.after(cfg.HTTPTimeout)
	for {
		select {
		case <-w.signal:
			if w.events.Swap(0)&wakeDeleted != 0 {
				return Reply{ReadResult: res, Reason: ReleasedDeleted}, nil
			}
		case <-timeout:
			return Reply{ReadResult: res, Reason: ReleasedTimeout}, nil
		case <-stop:
			return Reply{ReadResult: res, Reason: ReleasedStopped}, nil
		case <-h.stopMaintenance:
			return Reply{ReadResult: res, Reason: ReleasedStopped}, nil
		case <-ctx.Done():
			return Reply{ReadResult: res, Reason: ReleasedCanceled}, nil
		}
		next, err := h.reread(ctx, key, q, exp, h.ticks.Add(1))
		switch {
		case err == nil && next.HasMessages():
			return Reply{ReadResult: next}, nil
		case err == nil:
			res = next
		case ctx.Err() != nil:
			return Reply{ReadResult: res, Reason: ReleasedCanceled}, nil
		case AsError(err) == ErrStoreUnavailable:
			return Reply{ReadResult: res, Reason: ReleasedUnavailable}, nil
		default:
			return Reply{}, wrapRead(err, q)
		}
	}
}

func wrapRead(err error, q ReadQuery) error {
	if err == nil {
		return nil
	}
	return wrapStore(err, "reading %q", strings.Join(q.Channels, "|"))
}

func parseRead(req ReadRequest, maxChannels int) (ReadQuery, error) {
	if req.HasClientID {
		if req.ClientID == "" {
			return ReadQuery{}, ErrEmptyReadClientID
		}
		if err := ValidateClientID(req.ClientID); err != nil {
			return ReadQuery{}, err
		}
	}
	q := ReadQuery{ClientID: req.ClientID, Since: max(req.Since, 0)}
	rest := req.Channels
	for rest != "" {
		var id string
		id, rest, _ = strings.Cut(rest, "|")
		if id == "" {
			continue
		}
		if err := ValidateChannelID(id); err != nil {
			return ReadQuery{}, err
		}
		if slices.Contains(q.Channels, id) {
			continue
		}
		if len(q.Channels) == maxChannels {
			return ReadQuery{}, ErrTooManyChannels.With(fmt.Sprintf("at most %d", maxChannels))
		}
		q.Channels = append(q.Channels, id)
	}
	if len(q.Channels) == 0 {
		return ReadQuery{}, ErrNoChannels
	}
	return q, nil
}
