package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
)

// listen holds the store's one subscription to the hub's events channel and
// turns every event into a Notify. It closes ready when the first
// subscription is confirmed. When a confirmed subscription is lost it tells
// the hub once (EventResync, so that held reads look again now instead of
// waiting for a wake-up that cannot come) and subscribes again until it
// works; once the new subscription is confirmed it sends EventResync again,
// because events published in between were missed. The last error is kept in lastErr for Open. It runs
// until ctx ends.
func (s *Store) listen(ctx context.Context, ready chan<- struct{}, lastErr *atomic.Pointer[error]) {
	defer close(s.listening)
	var subscribed atomic.Bool
	confirmed := make(chan struct{}, 1)
	// rueidis calls the hook from its connection reader when Redis
	// confirms the subscription; events published after that reach onEvent.
	hook := func(sub rueidis.PubSubSubscription) {
		if sub.Kind != "subscribe" && sub.Kind != "ssubscribe" {
			return
		}
		s.health.succeeded()
		// Events after the confirmation reach onEvent: the cache may
		// fill again from here (cache.go).
		s.cache.resume()
		if subscribed.CompareAndSwap(false, true) {
			close(ready)
		} else {
			s.notify(hub.Event{Kind: hub.EventResync})
		}
		select {
		case confirmed <- struct{}{}:
		default:
		}
	}
	hctx := rueidis.WithOnSubscriptionHook(ctx, hook)
	const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
	backoff := minBackoff
	for {
		// A command is recycled once used, so build it each time.
		var cmd rueidis.Completed
		if s.subscribeCmd == "SSUBSCRIBE" {
			cmd = s.client.B().Ssubscribe().Channel(s.keys.events()).Build()
		} else {
			cmd = s.client.B().Subscribe().Channel(s.keys.events()).Build()
		}
		err := s.client.Receive(hctx, cmd, s.onEvent)
		// Events may be missed from here until the next confirmation.
		s.cache.suspend()
		if ctx.Err() != nil {
			return
		}
		lost := false
		select {
		case <-confirmed:
			// It worked for a while: back off afresh.
			lost, backoff = true, minBackoff
		default:
		}
		if err == nil {
			err = errors.New("unsubscribed by the server")
		}
		err = fmt.Errorf("subscription to %s lost: %w", s.keys.events(), err)
		lastErr.Store(&err)
		s.health.failed(err)
		s.suspect()
		// Once per loss, not at every failed attempt to subscribe again:
		// the hub's next EventResync must mean the subscription is back.
		if lost {
			s.notify(hub.Event{Kind: hub.EventResync})
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			backoff = min(2*backoff, maxBackoff)
		case <-s.switched:
			// A new master is known: subscribe there now rather than
			// after a backoff that grew while the old one was down.
			t.Stop()
			backoff = minBackoff
		}
	}
}

// onEvent turns a pub/sub message into a Notify, having handed what it
// carries to the cache first, so that the reads it wakes find it there:
// "m<id> <prev>\n<channel>\n<json>" a message published, "s..." the same
// for a durable message stored but not yet visible (no Notify),
// "c<id>\n<channel>" a durable message committed, "d<channel>" a deleted
// channel, and "p<channel>", a publish by a node of an earlier version, which
// carries no message.
func (s *Store) onEvent(m rueidis.PubSubMessage) {
	if len(m.Message) < 2 {
		return
	}
	body := m.Message[1:]
	switch m.Message[0] {
	case 'm', 's':
		id, prev, channel, json, ok := parseEvent(body)
		if !ok {
			return
		}
		visible := m.Message[0] == 'm'
		s.cache.published(channel, id, prev, []byte(json), visible)
		if visible {
			s.notify(hub.Event{Kind: hub.EventPublished, Channel: channel})
		}
	case 'c':
		ids, channel, ok := strings.Cut(body, "\n")
		id, err := strconv.ParseInt(ids, 10, 64)
		if !ok || err != nil {
			return
		}
		s.cache.committed(id)
		s.notify(hub.Event{Kind: hub.EventPublished, Channel: channel})
	case 'p':
		s.cache.forget(body)
		s.notify(hub.Event{Kind: hub.EventPublished, Channel: body})
	case 'd':
		s.cache.forget(body)
		s.notify(hub.Event{Kind: hub.EventDeleted, Channel: body})
	}
}
