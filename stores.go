package comet

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/simple-comet/caddy-comet/hub"
)

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// StoreOpener is implemented by store modules (namespace comet.stores). A
// hub opens its store once, when the first configuration that names the hub
// is loaded, and keeps it across reloads while the store's configuration
// stays the same.
type StoreOpener interface {
	OpenStore(opts hub.StoreOptions) (hub.Store, error)
}

// MemoryStore keeps the hub in this process's memory. It is the default
// store; it survives config reloads but not restarts, and it cannot be
// shared between Caddy instances (use the redis store for that).
//
// JSON: {"store": "memory"}; Caddyfile: `store memory`.
type MemoryStore struct{}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "comet.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// OpenStore implements StoreOpener.
func (MemoryStore) OpenStore(opts hub.StoreOptions) (hub.Store, error) {
	return hub.NewMemoryStore(opts), nil
}

var _ StoreOpener = (*MemoryStore)(nil)
