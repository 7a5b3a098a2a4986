package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// max_channels: channels up to the limit register, one more is refused with
// a message naming the limit (an existing id still gets "exists"), and a
// deleted channel frees its place.
func (s *suite) testMaxChannels(t *testing.T) {
	h := s.newHub(t, hub.Config{MaxChannels: 3})
	ctx := context.Background()
	for i := range 3 {
		mustRegister(t, h, fmt.Sprint("c", i), false, 0)
	}
	err := h.RegisterChannel(ctx, "c3", false, 0)
	wantErr(t, "a channel over max_channels", err, hub.ErrHubChannelLimit, "at most 3")
	if got := hub.AsError(err).Error(); got != "Too many channels: at most 3" {
		t.Errorf("message %q", got)
	}
	wantErr(t, "an existing channel at the limit", h.RegisterChannel(ctx, "c0", false, 0), hub.ErrChannelExists, "")
	if n := len(status(t, h).Channels); n != 3 {
		t.Fatalf("%d channels after refusals, want 3", n)
	}
	if _, err := h.DeleteChannel(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, h, "c3", false, 0)
	wantErr(t, "a channel over max_channels after the delete", h.RegisterChannel(ctx, "c4", false, 0), hub.ErrHubChannelLimit, "at most 3")

	unlimited := s.newHub(t, hub.Config{MaxChannels: -1})
	for i := range 5 {
		mustRegister(t, unlimited, fmt.Sprint("c", i), false, 0)
	}
}

// The limit holds when registrations race: of many at once, exactly as many
// as the limit allows succeed (on a shared store, from any number of nodes).
func (s *suite) testMaxChannelsConcurrent(t *testing.T) {
	const limit, tries = 5, 40
	h := s.newHub(t, hub.Config{MaxChannels: limit})
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			switch err := h.RegisterChannel(context.Background(), fmt.Sprint("race", i), false, 0); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, hub.ErrHubChannelLimit):
				refused.Add(1)
			default:
				t.Errorf("registering: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != limit || refused.Load() != tries-limit {
		t.Fatalf("%d registered and %d refused, want %d and %d", ok.Load(), refused.Load(), limit, tries-limit)
	}
	if n := len(status(t, h).Channels); n != limit {
		t.Fatalf("%d channels, want %d", n, limit)
	}
}

// max_clients: clients up to the limit register, one more is refused with a
// message naming the limit, and an expired client frees its place.
func (s *suite) testMaxClients(t *testing.T) {
	h := s.newHub(t, hub.Config{MaxClients: 2, SessionTimeout: s.opts.Expiry, InactiveChannelTimeout: -1})
	ctx := context.Background()
	mustClient(t, h, "a")
	mustClient(t, h, "b")
	err := h.RegisterClient(ctx, "c")
	wantErr(t, "a client over max_clients", err, hub.ErrHubClientLimit, "at most 2")
	if got := hub.AsError(err).Error(); got != "Too many clients: at most 2" {
		t.Errorf("message %q", got)
	}
	wantErr(t, "an existing client at the limit", h.RegisterClient(ctx, "a"), hub.ErrClientExists, "")
	eventually(t, "a place freed by expired clients", func() bool { return h.RegisterClient(ctx, "c") == nil })
}

// max_retained_messages: a channel may retain up to it, and asking for more
// is refused with a message naming the limit.
func (s *suite) testMaxRetainedMessages(t *testing.T) {
	h := s.newHub(t, hub.Config{MaxRetainedMessages: 5})
	ctx := context.Background()
	mustRegister(t, h, "five", false, 5)
	err := h.RegisterChannel(ctx, "six", false, 6)
	wantErr(t, "max_messages over max_retained_messages", err, hub.ErrInvalidMaxMessages, "at most 5")
	if _, ok := channelStatus(t, h, "six"); ok {
		t.Fatal("the refused channel was registered")
	}
	if c, _ := channelStatus(t, h, "five"); c.MaxMessages != 5 {
		t.Fatalf("channel retains %d, want 5", c.MaxMessages)
	}
}
