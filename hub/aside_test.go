package hub_test

import (
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/storetest"
)

// remoteStore hides that its store is a memory store, as a network store
// would be, so that the hub runs its reads on goroutines of their own.
type remoteStore struct {
	hub.Store
	hub.Sweeper
}

// The whole store suite holds with store reads run aside, as they are for
// every store but memory.
func TestMemoryStoreReadAside(t *testing.T) {
	storetest.RunWith(t, func(t *testing.T, opts hub.StoreOptions) hub.Store {
		s := hub.NewMemoryStore(opts)
		return remoteStore{Store: s, Sweeper: s}
	}, storetest.Options{FakeClock: true})
}
