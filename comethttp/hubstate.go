package comethttp

import (
	"cmp"
	"runtime"
	"sync/atomic"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/internal/offstack"
)

// DefaultIPv6PrefixPerIP is ipv6_prefix_per_ip's default: a /64 is one
// IPv6 link (the subnet SLAAC needs), the least a subscriber is given.
const DefaultIPv6PrefixPerIP = 64

// HubState is what the HTTP layer keeps of one hub: the counts of its
// replies, the goroutines that write its event streams and how it counts
// clients for max_held_per_ip. Every Handler of the hub shares it, and it
// lives as long as the hub does, so that the counts survive the handlers
// (a Caddy reload replaces them) as the hub's own Stats do.
type HubState struct {
	hub *hub.Hub

	// replies counts the API replies sent from this hub, and errors those
	// with a negative return_code, by -code: HTTP's counts, so they live
	// here rather than in the engine.
	replies atomic.Int64
	errors  [-hub.CodeOverloaded + 1]atomic.Int64

	// writers make the deep writes of the hub's event streams, whichever
	// handler opened them (see newEventWriters).
	writers *offstack.Runner

	// ipv6PrefixPerIP is the hub's ipv6_prefix_per_ip (0: its default).
	// The engine takes peers as opaque keys, so the HTTP layer keeps it.
	ipv6PrefixPerIP atomic.Int32
}

// NewHubState returns the HTTP state of h. Close it when h closes.
func NewHubState(h *hub.Hub) *HubState {
	return &HubState{hub: h, writers: newEventWriters()}
}

// Hub returns the hub.
func (s *HubState) Hub() *hub.Hub { return s.hub }

// Replies returns how many API replies the hub's handlers have sent:
// every reply but the client scripts.
func (s *HubState) Replies() int64 { return s.replies.Load() }

// Errors returns how many error replies with return code code (negative,
// from hub.CodeBadRequest to hub.CodeOverloaded) the hub's handlers have
// sent; 0 for any other code.
func (s *HubState) Errors(code int) int64 {
	if -code > 0 && -code < len(s.errors) {
		return s.errors[-code].Load()
	}
	return 0
}

// countError records an error reply with a negative return code; other
// codes are ignored.
func (s *HubState) countError(code int) {
	if -code > 0 && -code < len(s.errors) {
		s.errors[-code].Add(1)
	}
}

// SetIPv6PrefixPerIP sets how many leading bits of an IPv6 client address
// max_held_per_ip counts by (1 to 128); 0 is DefaultIPv6PrefixPerIP.
func (s *HubState) SetIPv6PrefixPerIP(bits int) { s.ipv6PrefixPerIP.Store(int32(bits)) }

// IPv6PrefixPerIP returns what SetIPv6PrefixPerIP set: 0 for the default.
func (s *HubState) IPv6PrefixPerIP() int { return int(s.ipv6PrefixPerIP.Load()) }

// peerOf is the key a client's held reads count under for max_held_per_ip
// (see peerKey).
func (s *HubState) peerOf(ip string) string {
	return peerKey(ip, cmp.Or(int(s.ipv6PrefixPerIP.Load()), DefaultIPv6PrefixPerIP))
}

// Close ends the goroutines that write the hub's event streams, each busy
// one once its write returns, without waiting for them; a stream that
// writes after Close gets a writer of its own, which ends after that write.
// It does not close the hub.
func (s *HubState) Close() { s.writers.Close() }

// newEventWriters returns the goroutines that write the deep writes of a
// hub's event streams: each stream's first, which sends the response's
// header, and events over inlineEventSize (docs/design.md, "Event streams:
// writes"). A stream cannot make those from its own goroutine: they go
// through net/http's chunked writer deep enough to double the goroutine's
// stack, which the stream would keep for as long as it is open. The runner
// is unbounded, so a write that blocks (a client that stopped reading,
// until Caddy's write_idle_timeout ends it) holds only its own writer, and
// it keeps a couple of idle writers per CPU: writes are CPU work on a
// connection that is ready, and that keeps every CPU writing while others
// switch.
func newEventWriters() *offstack.Runner {
	return offstack.New(max(4, 2*runtime.GOMAXPROCS(0)), 0)
}
