package hub_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// Settings that shorten the timeouts take effect on the maintenance loop at
// once: a held read's client is renewed at the new, shorter interval, not
// after the interval made for the old timeouts (up to 10 s). In a synctest
// bubble, so that the test waits on the hub's own clock.
func TestShorterTimeoutsTakeEffectAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hub.NewMemory(hub.Config{SessionTimeout: time.Minute, InactiveChannelTimeout: hub.Off, HTTPTimeout: time.Hour})
		defer h.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := h.RegisterChannel(ctx, "a", false, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.RegisterClient(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		held := make(chan error, 1)
		go func() {
			_, err := h.Read(ctx, hub.ReadRequest{Channels: "a", ClientID: "c", HasClientID: true}, nil)
			held <- err
		}()
		synctest.Wait() // the read is held

		h.SetConfig(hub.Config{SessionTimeout: time.Second, InactiveChannelTimeout: hub.Off, HTTPTimeout: time.Hour})
		time.Sleep(5 * time.Second)
		_, err := h.Read(ctx, hub.ReadRequest{Channels: "a", ClientID: "c", HasClientID: true, Hold: -1}, nil)
		if errors.Is(err, hub.ErrUnregisteredClient) {
			t.Fatal("the held read's client expired 5 s after session_timeout became 1 s: the maintenance loop kept its old interval")
		} else if err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	})
}
