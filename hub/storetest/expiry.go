package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// The expiry tests wait for something that is left alone to expire, and
// check at that moment that what was kept active is still there: the
// comparison, not a sleep, says that enough time has passed.

// keepBusy calls fn every 50ms until the returned stop is called.
func keepBusy(t *testing.T, fn func() error) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := fn(); err != nil {
				t.Errorf("keeping active: %v", err)
				return
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// clockSlack is how much earlier than by the test's clock a store may let
// something expire. Redis counts TTLs in milliseconds from a clock it
// reads once per turn of its event loop, so under load a TTL it sets runs
// from a moment a few milliseconds before the command arrived (seen: 2.2
// ms, on a 3-node Cluster with the CPU taken by other processes).
const clockSlack = 10 * time.Millisecond

// A client expires session_timeout after its last read, each read renews
// it, and an expired client gets -3 until it registers again.
func (s *suite) testSessionExpiry(t *testing.T) {
	expiry := s.opts.Expiry
	h := s.newHub(t, hub.Config{SessionTimeout: expiry, InactiveChannelTimeout: -1})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "private", true, 10)
	mustPublish(t, h, "a", "x")
	mustPublish(t, h, "private", "x")
	start := time.Now()
	mustClient(t, h, "idle")
	mustClient(t, h, "active")
	active := hub.ReadRequest{Channels: "a|private", ClientID: "active", HasClientID: true}
	stop := keepBusy(t, func() error {
		_, err := read(h, active, patience)
		return err
	})

	eventually(t, "idle client expires", func() bool { return !hasClient(t, h, "idle") })
	if elapsed := time.Since(start); elapsed < expiry-clockSlack {
		t.Fatalf("idle client gone after %v, before session_timeout %v", elapsed, expiry)
	}
	idle := hub.ReadRequest{Channels: "a", ClientID: "idle", HasClientID: true}
	_, err := read(h, idle, patience)
	wantErr(t, "read by an expired client", err, hub.ErrUnregisteredClient, "")
	r := mustRead(t, h, active)
	if got := channelIDs(r); len(got) != 2 {
		t.Fatalf("active client reads %q, want both channels", got)
	}
	if !hasClient(t, h, "active") {
		t.Fatal("active client missing from status")
	}

	// Registering again revives the id.
	mustClient(t, h, "idle")
	mustRead(t, h, idle)

	// Once nobody reads as "active", it expires too.
	stop()
	eventually(t, "client expires once it stops reading", func() bool { return !hasClient(t, h, "active") })
	_, err = read(h, active, patience)
	wantErr(t, "read by a client that stopped reading", err, hub.ErrUnregisteredClient, "")
}

// A read held longer than session_timeout keeps its client alive.
func (s *suite) testHeldReadKeepsSession(t *testing.T) {
	expiry := s.opts.Expiry
	// Twice the timeout: without renewals, what the read uses would be gone
	// half-way through.
	hold := 2 * expiry
	h := s.newHub(t, hub.Config{SessionTimeout: expiry, InactiveChannelTimeout: -1, HTTPTimeout: hold})
	mustRegister(t, h, "a", false, 10)
	mustClient(t, h, "idle")
	mustClient(t, h, "holder")
	req := hub.ReadRequest{Channels: "a", ClientID: "holder", HasClientID: true}
	start := time.Now()
	p := startRead(context.Background(), h, req, nil)
	waitHeld(t, h, 1)

	eventually(t, "idle client expires", func() bool { return !hasClient(t, h, "idle") })
	if !hasClient(t, h, "holder") {
		t.Fatal("client with a held read expired")
	}
	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != hub.ReleasedTimeout || time.Since(start) < hold {
		t.Fatalf("held read released by %s after %v, want a timeout after %v", r.Reason, time.Since(start), hold)
	}
	// The read was held for two session timeouts; the client is still
	// registered.
	m := mustPublish(t, h, "a", "x")
	r = mustRead(t, h, hub.ReadRequest{Channels: "a", ClientID: "holder", HasClientID: true, Since: r.LastID})
	if got, _ := messagesOf(r, "a"); len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("read after the held read: %v, want [%d]", ids(got), m.ID)
	}
}

// A channel nobody reads or publishes to is removed with its messages after
// inactive_channel_timeout; reads and publishes keep a channel alive.
func (s *suite) testChannelExpiry(t *testing.T) {
	expiry := s.opts.Expiry
	h := s.newHub(t, hub.Config{InactiveChannelTimeout: expiry, HTTPTimeout: longHold})
	start := time.Now()
	for _, c := range []string{"idle", "read", "published"} {
		mustRegister(t, h, c, false, 10)
	}
	mustPublish(t, h, "idle", "lost with the channel")
	mustPublish(t, h, "read", "x")
	stopReads := keepBusy(t, func() error {
		_, err := read(h, hub.ReadRequest{Channels: "read"}, patience)
		return err
	})
	stopPublishes := keepBusy(t, func() error {
		_, err := h.Publish(context.Background(), "published", "x")
		return err
	})

	eventually(t, "idle channel expires", func() bool {
		_, ok := channelStatus(t, h, "idle")
		return !ok
	})
	if elapsed := time.Since(start); elapsed < expiry-clockSlack {
		t.Fatalf("idle channel gone after %v, before inactive_channel_timeout %v", elapsed, expiry)
	}
	for _, c := range []string{"read", "published"} {
		if _, ok := channelStatus(t, h, c); !ok {
			t.Fatalf("channel %q expired although active", c)
		}
	}
	_, err := h.Publish(context.Background(), "idle", "x")
	wantErr(t, "publish to an expired channel", err, hub.ErrNoChannel, "")
	_, err = read(h, hub.ReadRequest{Channels: "idle"}, patience)
	wantErr(t, "read of an expired channel", err, hub.ErrNoValidChannels, "")
	// Its messages went with it.
	mustRegister(t, h, "idle", false, 10)
	if cs, _ := channelStatus(t, h, "idle"); cs.MessagesCount != 0 {
		t.Fatalf("re-registered channel has %d messages, want none", cs.MessagesCount)
	}

	// Left alone, the others expire too.
	stopReads()
	stopPublishes()
	for _, c := range []string{"read", "published"} {
		eventually(t, "channel "+c+" expires once inactive", func() bool {
			_, ok := channelStatus(t, h, c)
			return !ok
		})
	}
}

// A read held longer than inactive_channel_timeout keeps its channel alive.
func (s *suite) testHeldReadKeepsChannel(t *testing.T) {
	expiry := s.opts.Expiry
	// Twice the timeout: without renewals, what the read uses would be gone
	// half-way through.
	hold := 2 * expiry
	h := s.newHub(t, hub.Config{InactiveChannelTimeout: expiry, HTTPTimeout: hold})
	mustRegister(t, h, "idle", false, 10)
	mustRegister(t, h, "held", false, 10)
	start := time.Now()
	p := startRead(context.Background(), h, hub.ReadRequest{Channels: "held"}, nil)
	waitHeld(t, h, 1)

	eventually(t, "idle channel expires", func() bool {
		_, ok := channelStatus(t, h, "idle")
		return !ok
	})
	if _, ok := channelStatus(t, h, "held"); !ok {
		t.Fatal("channel with a held read expired")
	}
	r, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != hub.ReleasedTimeout || time.Since(start) < hold {
		t.Fatalf("held read released by %s after %v, want a timeout after %v", r.Reason, time.Since(start), hold)
	}
	mustPublish(t, h, "held", "still here")
}

// A negative inactive_channel_timeout turns channel expiry off.
func (s *suite) testChannelExpiryOff(t *testing.T) {
	expiry := s.opts.Expiry
	h := s.newHub(t, hub.Config{InactiveChannelTimeout: -1, SessionTimeout: expiry})
	mustRegister(t, h, "forever", false, 10)
	m := mustPublish(t, h, "forever", "kept")
	// The client's expiry shows that time passed and expiry ran.
	mustClient(t, h, "marker")
	eventually(t, "marker client expires", func() bool { return !hasClient(t, h, "marker") })

	if _, ok := channelStatus(t, h, "forever"); !ok {
		t.Fatal("channel expired with expiry off")
	}
	r := mustRead(t, h, hub.ReadRequest{Channels: "forever"})
	if got, _ := messagesOf(r, "forever"); len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("messages %v, want [%d]", ids(got), m.ID)
	}
}
