package comethttp

import (
	"net/netip"
	"strings"
)

// peerKey is the key under which a client's held reads are counted for
// max_held_per_ip, from its IP address as clientIP gives it: an IPv4
// address alone, an IPv6 address by its prefix of bits bits
// (ipv6_prefix_per_ip; 2001:db8:1:2::/64), or alone when bits is 128. An
// IPv4-mapped IPv6 address (::ffff:192.0.2.1) is its IPv4 address, and a
// zone (fe80::1%eth0) is dropped, as Caddy drops it from the client IP. Text
// that is not an IP address (a Unix socket's "@") is its own key.
//
// Only a masked IPv6 address costs an allocation, the key itself: the key
// is built in a buffer on the stack, and one that reads as the address
// given (Caddy's client IP is canonical, so any IPv4 address, and an IPv6
// one at 128) is ip itself. It runs on the read path, only while
// max_held_per_ip is set, and keeps within the stack budget of a held read
// (docs/design.md): no temporary but the key's buffer, and netip's frames.
func peerKey(ip string, bits int) string {
	host, _, _ := strings.Cut(ip, "%")
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	var buf [len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")]byte
	key := buf[:0]
	if addr.Is6() && bits < 128 {
		if p, err := addr.Prefix(bits); err == nil {
			key = p.AppendTo(key)
		}
	}
	if len(key) == 0 { // IPv4, or counted alone
		key = addr.AppendTo(key)
	}
	if string(key) == host {
		return host
	}
	return string(key)
}
