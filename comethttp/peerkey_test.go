package comethttp

import "testing"

// max_held_per_ip counts an IPv6 client by its prefix, so that one
// subscriber's /64 is one address, and an IPv4 client by its address,
// however it is spelled.
func TestPeerKey(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		bits int
		want string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"192.0.2.1", 8, "192.0.2.1"},   // IPv4 always counts alone
		{"192.0.2.1", 128, "192.0.2.1"}, // as it does at /128
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"::ffff:c000:201", 64, "192.0.2.1"},
		{"::ffff:192.0.2.1", 128, "192.0.2.1"},
		{"2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},
		{"2001:DB8:1:2:0:0:0:9", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", 64, "2001:db8:1:3::/64"},
		{"2001:db8:1:2ff::1", 56, "2001:db8:1:200::/56"},
		{"2001:db8:1:200::1", 56, "2001:db8:1:200::/56"},
		{"2001:db8:1:300::1", 56, "2001:db8:1:300::/56"},
		{"2001:db8::1", 1, "::/1"},
		{"2001:db8::1", 128, "2001:db8::1"},
		{"2001:db8::2", 128, "2001:db8::2"},
		{"2001:DB8:0::1", 128, "2001:db8::1"},
		{"::1", 128, "::1"},
		{"::1", 64, "::/64"},
		// A zone names the interface, not the client: it is dropped, as
		// Caddy drops it from the client IP.
		{"fe80::1%eth0", 64, "fe80::/64"},
		{"fe80::1%eth1", 128, "fe80::1"},
		{"192.0.2.1%eth0", 64, "192.0.2.1"},
		// Not an IP address: its own key, as before (empty is not counted).
		{"@", 64, "@"},
		{"", 64, ""},
		{"not-an-ip", 64, "not-an-ip"},
	} {
		if got := peerKey(tt.ip, tt.bits); got != tt.want {
			t.Errorf("peerKey(%q, %d) = %q, want %q", tt.ip, tt.bits, got, tt.want)
		}
	}
}

// The key costs a held read no allocation unless it is a masked IPv6
// address, which costs one: Caddy's client IP is canonical, and an IPv4
// address or an IPv6 address counted alone is its own key.
func TestPeerKeyAllocations(t *testing.T) {
	for _, tt := range []struct {
		ip     string
		bits   int
		allocs float64
	}{
		{"192.0.2.1", 64, 0},
		{"2001:db8::1", 128, 0},
		{"2001:db8:1:2::1", 64, 1},
		{"2001:db8:1:2::1", 56, 1},
	} {
		if got := testing.AllocsPerRun(100, func() { peerKey(tt.ip, tt.bits) }); got != tt.allocs {
			t.Errorf("peerKey(%q, %d): %v allocations, want %v", tt.ip, tt.bits, got, tt.allocs)
		}
	}
}
