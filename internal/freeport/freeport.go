// Package freeport finds a TCP port for a server a test is about to start
// (Caddy, redis-server, a page server). It lives apart from those helpers
// so that packages which must not import Caddy (hub/...) can share it.
package freeport

import (
	"net"
	"testing"
)

// Get returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago. The caller's server binds it next; another process could take it in
// between, which is rare enough for tests.
func Get(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
