package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// twoNodesWork checks, through two hubs on the same Redis deployment, that
// a publish on one releases a read held on the other.
func twoNodesWork(t *testing.T, co rueidis.ClientOption) {
	t.Helper()
	a, b := nodeWith(t, co), nodeWith(t, co)
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "c", false, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterClient(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	held := readAsync(b, hub.ReadRequest{Channels: "c", ClientID: "u", HasClientID: true})
	waitHeld(t, b, 1)
	if _, err := a.Publish(ctx, "c", "hi"); err != nil {
		t.Fatal(err)
	}
	r := <-held
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := contents(r.reply, "c"); len(got) != 1 || got[0] != "hi" {
		t.Fatalf("held read got %v", got)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Channels) != 1 || len(st.Channels[0].Clients) != 1 || st.Channels[0].MessagesCount != 1 || st.Counts.Channels != 1 {
		t.Fatalf("status %+v", st)
	}
}

// On Redis Cluster the keys of a hub share one slot (the scripts would fail
// with CROSSSLOT otherwise) and events go through sharded pub/sub.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	co := rueidis.ClientOption{InitAddress: c.Addrs()}
	s := open(t, c.Addrs()[1], "default", hub.StoreOptions{}, nil)
	if s.client.Mode() != rueidis.ClientModeCluster || s.publishCmd != "SPUBLISH" {
		t.Fatalf("mode %s, publish %s: want cluster with SPUBLISH", s.client.Mode(), s.publishCmd)
	}
	twoNodesWork(t, co)
}

func TestSentinel(t *testing.T) {
	master := startRedis(t)
	sentinel := redistest.Sentinel(t, master, "cometmaster")
	twoNodesWork(t, rueidis.ClientOption{
		InitAddress: []string{sentinel.Addr()},
		Sentinel:    rueidis.SentinelOption{MasterSet: "cometmaster"},
	})
	// The data is on the master the sentinel named.
	if out, err := master.Run("EXISTS", "{comet:shared}:ch:c"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("channel not on the master: %q %v", out, err)
	}
}

func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	twoNodesWork(t, rueidis.ClientOption{
		InitAddress: []string{srv.Addr()},
		TLSConfig:   &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	})

	// A server certificate the client cannot verify is refused.
	_, err = Open(Options{Client: rueidis.ClientOption{
		InitAddress: []string{srv.Addr()},
		TLSConfig:   &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	}}, hub.StoreOptions{Hub: "x"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverifiable certificate: %v, want a certificate error", err)
	}
}

func TestACLUser(t *testing.T) {
	srv := startRedis(t, "--user", "default", "off", "--user", "comet", "on", ">s3cret", "~*", "&*", "+@all")
	twoNodesWork(t, rueidis.ClientOption{InitAddress: []string{srv.Addr()}, Username: "comet", Password: "s3cret"})

	_, err := Open(Options{Client: rueidis.ClientOption{
		InitAddress: []string{srv.Addr()}, Username: "comet", Password: "wrong",
	}, Timeout: time.Second}, hub.StoreOptions{Hub: "x"})
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("wrong password: %v, want WRONGPASS", err)
	}
}
