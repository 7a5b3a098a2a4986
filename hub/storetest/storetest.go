// Package storetest is the behavioural suite every hub.Store must pass. It
// drives the store through a real *hub.Hub, so it checks what a user of the
// API relies on (SPEC sections 2 and 3): validation, ids, retention, reads,
// sessions, expiry, deletion, held reads, idempotent publishes and, under concurrency, that no
// message is lost, repeated or reordered.
//
// A store package runs it from a test:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts hub.StoreOptions) hub.Store {
//			return mystore.Open(..., opts)
//		})
//	}
//
// Every subtest opens its own hub, named after the test and the time, so a
// store shared between subtests (one Redis) keeps them apart by
// StoreOptions.Hub. The suite closes each store through Hub.Close.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// Opener opens a store for one subtest. It fails t when it cannot.
type Opener func(t *testing.T, opts hub.StoreOptions) hub.Store

// Options sizes the concurrency tests. Zero fields take the defaults named on
// each; a slow store (a network round trip per call) may ask for less.
type Options struct {
	// Readers is the number of concurrent readers in the stress test.
	// Default: 200.
	Readers int
	// Publishers is the number of concurrent publishers in the stress test.
	// Default: 8.
	Publishers int
	// MessagesPerPublisher is how many messages each publisher sends.
	// Default: 250.
	MessagesPerPublisher int
	// Channels is the number of channels the stress test spreads its
	// messages over. Default: 5.
	Channels int
	// RaceIterations is how many times the publish-during-read test races a
	// publish against a read being held. Default: 1000.
	RaceIterations int
	// Deadline bounds the stress test; a reader still waiting then has lost
	// a wake-up. It takes about 3 s on Redis, but 30 s was seen to run out
	// with the CPU taken by other processes and GOMAXPROCS=1. Default: 90s.
	Deadline time.Duration
	// Expiry is the session_timeout and inactive_channel_timeout of the
	// expiry tests. The hub renews what held reads use every third of it,
	// so it must stay well above the longest stall the machine may impose
	// on a goroutine or a store round trip. Default: 1s.
	Expiry time.Duration
	// FakeClock runs the tests that wait for time to pass (expiry, held
	// reads' timeouts, the idempotency window) in a testing/synctest
	// bubble, whose clock is fake: the hub's timers, its maintenance loop
	// and the store's time.Now then advance only when every goroutine of the
	// test waits, so those tests take no real time and their timing is
	// exact. Only a store that keeps its state in the process and does no
	// I/O can run in a bubble (the memory store); a network store keeps
	// time by its server's clock. Default: false (real time).
	FakeClock bool
}

func (o Options) normalize() Options {
	if o.Readers <= 0 {
		o.Readers = 200
	}
	if o.Publishers <= 0 {
		o.Publishers = 8
	}
	if o.MessagesPerPublisher <= 0 {
		o.MessagesPerPublisher = 250
	}
	if o.Channels <= 0 {
		o.Channels = 5
	}
	if o.RaceIterations <= 0 {
		o.RaceIterations = 1000
	}
	if o.Deadline <= 0 {
		o.Deadline = 90 * time.Second
	}
	if o.Expiry <= 0 {
		o.Expiry = time.Second
	}
	return o
}

// Run runs the whole suite against the stores that open returns, with the
// default Options.
func Run(t *testing.T, open func(t *testing.T, opts hub.StoreOptions) hub.Store) {
	RunWith(t, open, Options{})
}

// RunWith runs the whole suite with the concurrency tests sized, and the
// expiry tests timed, by o.
func RunWith(t *testing.T, open func(t *testing.T, opts hub.StoreOptions) hub.Store, o Options) {
	s := &suite{open: open, opts: o.normalize()}
	// The concurrency tests run first and alone, so that their load does not
	// stretch the timing of the expiry tests that run in parallel after them.
	t.Run("Stress", s.testStress)
	t.Run("PublishDuringHeldRead", s.testPublishDuringHeldRead)

	// The tests that wait for time to pass (see Options.FakeClock).
	timed := map[string]bool{
		"SessionExpiry": true, "HeldReadKeepsSession": true, "ChannelExpiry": true,
		"HeldReadKeepsChannel": true, "ChannelExpiryOff": true, "HeldReadTimeout": true,
		"MaxClients": true, "IdempotencyWindow": true,
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"RegisterChannel", s.testRegisterChannel},
		{"RegisterChannelExists", s.testRegisterChannelExists},
		{"RegisterClient", s.testRegisterClient},
		{"Publish", s.testPublish},
		{"PublishIDs", s.testPublishIDs},
		{"Retention", s.testRetention},
		{"ReadSince", s.testReadSince},
		{"ReadSinceClamped", s.testReadSinceClamped},
		{"ReadChannelList", s.testReadChannelList},
		{"ReadTooManyChannels", s.testReadTooManyChannels},
		{"ReadSessions", s.testReadSessions},
		{"ReadRecordsClient", s.testReadRecordsClient},
		{"SessionExpiry", s.testSessionExpiry},
		{"HeldReadKeepsSession", s.testHeldReadKeepsSession},
		{"ChannelExpiry", s.testChannelExpiry},
		{"HeldReadKeepsChannel", s.testHeldReadKeepsChannel},
		{"ChannelExpiryOff", s.testChannelExpiryOff},
		{"Delete", s.testDelete},
		{"DeleteReleasesHeldReads", s.testDeleteReleasesHeldReads},
		{"HeldReadReleasedByPublish", s.testHeldReadReleasedByPublish},
		{"HeldReadTimeout", s.testHeldReadTimeout},
		{"HeldReadStopped", s.testHeldReadStopped},
		{"MaxHeldConnections", s.testMaxHeld},
		{"MaxHeldPerPeer", s.testMaxHeldPerPeer},
		{"ReadPaged", s.testReadPaged},
		{"ReadPagedLargeMessage", s.testReadPagedLargeMessage},
		{"MaxChannels", s.testMaxChannels},
		{"MaxChannelsConcurrent", s.testMaxChannelsConcurrent},
		{"MaxClients", s.testMaxClients},
		{"MaxRetainedMessages", s.testMaxRetainedMessages},
		{"IdempotentPublish", s.testIdempotentPublish},
		{"IdempotencyKeyRules", s.testIdempotencyKeyRules},
		{"IdempotentPublishConcurrent", s.testIdempotentPublishConcurrent},
		{"IdempotencyWindow", s.testIdempotencyWindow},
		{"MaxIdempotencyKeys", s.testMaxIdempotencyKeys},
		{"IdempotencyKeysGoWithChannel", s.testIdempotencyKeysGoWithChannel},
		{"Status", s.testStatus},
		{"StatusCapped", s.testStatusCapped},
		{"StatusReadersCapped", s.testStatusReadersCapped},
		{"Ping", s.testPing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if timed[tc.name] && s.opts.FakeClock {
				synctest.Test(t, tc.fn)
				return
			}
			tc.fn(t)
		})
	}
}

type suite struct {
	open Opener
	opts Options
}

// Timing of the tests that wait for something to happen or to expire.
const (
	// shortHold is the HTTPTimeout of the test that waits for it.
	shortHold = 300 * time.Millisecond
	// patience bounds every wait for something that must happen; reaching
	// it is the failure being tested for, not slowness.
	patience = 10 * time.Second
	// longHold is an HTTPTimeout no test reaches, for reads that must be
	// released by something else.
	longHold = time.Minute
)

// newHub opens a hub on a new store and closes it when the test ends.
func (s *suite) newHub(t *testing.T, cfg hub.Config) *hub.Hub {
	t.Helper()
	name := fmt.Sprintf("storetest-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	h, err := hub.New(name, cfg, func(o hub.StoreOptions) (hub.Store, error) {
		return s.open(t, o), nil
	})
	if err != nil {
		t.Fatalf("creating hub: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing hub: %v", err)
		}
	})
	return h
}

func mustRegister(t *testing.T, h *hub.Hub, id string, useSessions bool, maxMessages int) {
	t.Helper()
	if err := h.RegisterChannel(context.Background(), id, useSessions, maxMessages); err != nil {
		t.Fatalf("registering channel %q: %v", id, err)
	}
}

func mustClient(t *testing.T, h *hub.Hub, id string) {
	t.Helper()
	if err := h.RegisterClient(context.Background(), id); err != nil {
		t.Fatalf("registering client %q: %v", id, err)
	}
}

func mustPublish(t *testing.T, h *hub.Hub, channel, content string) hub.Message {
	t.Helper()
	m, err := h.Publish(context.Background(), channel, content)
	if err != nil {
		t.Fatalf("publishing to %q: %v", channel, err)
	}
	return m
}

// mustRead does a read that must be answered at once (it has messages) or
// fail; a read that would be held fails the test after patience.
func mustRead(t *testing.T, h *hub.Hub, req hub.ReadRequest) hub.Reply {
	t.Helper()
	r, err := read(h, req, patience)
	if err != nil {
		t.Fatalf("read %+v: %v", req, err)
	}
	if r.Reason != hub.ReleasedMessages {
		t.Fatalf("read %+v: released by %v, want an answer with messages", req, r.Reason)
	}
	return r
}

func read(h *hub.Hub, req hub.ReadRequest, within time.Duration) (hub.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return h.Read(ctx, req, nil)
}

// wantErr checks that err is the API error want, and that its detail says
// why when detail is given.
func wantErr(t *testing.T, what string, err error, want *hub.Error, detail string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %q", what, err, want.Message)
		return
	}
	got := hub.AsError(err)
	if got.Code != want.Code {
		t.Errorf("%s: code %d, want %d", what, got.Code, want.Code)
	}
	if !strings.Contains(got.Detail, detail) {
		t.Errorf("%s: detail %q, want it to say %q", what, got.Detail, detail)
	}
}

// pending is a read running in its own goroutine.
type pending chan readOutcome

type readOutcome struct {
	reply hub.Reply
	err   error
}

func startRead(ctx context.Context, h *hub.Hub, req hub.ReadRequest, stop <-chan struct{}) pending {
	p := make(pending, 1)
	go func() {
		r, err := h.Read(ctx, req, stop)
		p <- readOutcome{r, err}
	}()
	return p
}

// wait returns the read's answer, failing the test if none comes within
// patience.
func (p pending) wait(t *testing.T) (hub.Reply, error) {
	t.Helper()
	select {
	case o := <-p:
		return o.reply, o.err
	case <-time.After(patience):
		t.Fatalf("read not answered within %v", patience)
		return hub.Reply{}, nil
	}
}

// eventually polls cond until it holds, failing the test after patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitHeld waits until n reads are held (registered for wake-ups).
func waitHeld(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d held reads", n), func() bool { return h.Held() == n })
}

func status(t *testing.T, h *hub.Hub) hub.Status {
	t.Helper()
	st, err := h.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// channelStatus returns the channel's entry in Status.
func channelStatus(t *testing.T, h *hub.Hub, id string) (hub.ChannelStatus, bool) {
	t.Helper()
	for _, c := range status(t, h).Channels {
		if c.ID == id {
			return c, true
		}
	}
	return hub.ChannelStatus{}, false
}

func hasClient(t *testing.T, h *hub.Hub, id string) bool {
	t.Helper()
	for _, c := range status(t, h).Clients {
		if c == id {
			return true
		}
	}
	return false
}

// messagesOf returns the messages of channel in a reply, and whether the
// reply has an entry for it.
func messagesOf(r hub.Reply, channel string) ([]hub.Message, bool) {
	for _, c := range r.Channels {
		if c.ID == channel {
			return c.Messages, true
		}
	}
	return nil, false
}

func ids(ms []hub.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func contents(ms []hub.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Content()
	}
	return out
}

func channelIDs(r hub.Reply) []string {
	out := make([]string, len(r.Channels))
	for i, c := range r.Channels {
		out[i] = c.ID
	}
	return out
}
