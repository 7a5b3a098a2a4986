package redisstore

import (
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// open opens a store on addr for the hub hubName and closes it when the test
// ends.
func open(t testing.TB, addr, hubName string, so hub.StoreOptions, log *zap.Logger) *Store {
	t.Helper()
	so.Hub = hubName
	s, err := Open(Options{
		Client:  rueidis.ClientOption{InitAddress: []string{addr}},
		Timeout: time.Second,
		Logger:  log,
	}, so)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// events collects a store's notifications.
type events chan hub.Event

func newEvents() events { return make(events, 4096) }

func (e events) notify(ev hub.Event) {
	select {
	case e <- ev:
	default:
		panic("test event buffer full")
	}
}

func (e events) options() hub.StoreOptions { return hub.StoreOptions{Notify: e.notify} }

// wait returns the next event that matches, failing the test after 10s (a
// notification that never comes is the failure being tested for, not
// slowness).
func (e events) wait(t testing.TB, match func(hub.Event) bool) hub.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-e:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("no matching notification within 10s")
			return hub.Event{}
		}
	}
}

func kind(k hub.EventKind, channel string) func(hub.Event) bool {
	return func(ev hub.Event) bool { return ev.Kind == k && ev.Channel == channel }
}

func startRedis(t testing.TB, extra ...string) *redistest.Server {
	t.Helper()
	return redistest.Start(t, extra...)
}

// openHub opens a hub on a store on addr, as one node of a cluster runs it,
// and closes it when the test ends.
func openHub(t testing.TB, addr string) *hub.Hub {
	t.Helper()
	h, err := hub.New("default", hub.Config{HTTPTimeout: time.Minute, MessagesPerChannel: 100},
		func(so hub.StoreOptions) (hub.Store, error) {
			return Open(Options{Client: rueidis.ClientOption{InitAddress: []string{addr}}, Timeout: time.Second}, so)
		})
	if err != nil {
		t.Fatalf("opening hub: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}
