package redistest

import (
	"strconv"
	"testing"

	"github.com/simple-comet/caddy-comet/internal/testcerts"
)

// TLSServer is a redis-server that only speaks TLS, with a certificate for
// 127.0.0.1 signed by a CA made for the test.
type TLSServer struct {
	*Server
	// CAFile is the PEM file of the CA that signed the server's
	// certificate.
	CAFile string
}

// URL is the server's rediss:// URL.
func (s *TLSServer) URL() string { return "rediss://" + s.Addr() + "/0" }

// StartTLS starts a TLS-only redis-server (no client certificates).
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	s := newServer(t, "Ready to accept connections")
	caFile, certFile, keyFile := testcerts.Write(t, s.Dir)
	s.args = []string{
		"--port", "0", "--tls-port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--logfile", "",
	}
	s.start()
	return &TLSServer{Server: s, CAFile: caFile}
}
