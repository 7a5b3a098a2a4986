package redisstore

import (
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
	"github.com/simple-comet/caddy-comet/hub/storetest"
)

func suiteOpener(co rueidis.ClientOption) storetest.Opener {
	return func(t *testing.T, so hub.StoreOptions) hub.Store {
		t.Helper()
		s, err := Open(Options{Client: co, Timeout: 5 * time.Second}, so)
		if err != nil {
			t.Fatalf("opening redis store: %v", err)
		}
		return s
	}
}

// The behavioural suite every store passes, against one standalone Redis
// (each subtest is its own hub on it).
func TestStoreSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, suiteOpener(rueidis.ClientOption{InitAddress: []string{srv.Addr()}}))
}

// The same suite on a three-node Redis Cluster: each hub lives in one slot,
// the subtests' hubs spread over the nodes.
func TestStoreSuiteCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster suite skipped in -short mode")
	}
	c := redistest.StartCluster(t, 3)
	storetest.Run(t, suiteOpener(rueidis.ClientOption{InitAddress: c.Addrs()}))
}
