package hub

import (
	"hash/maphash"
	"sync"
)

// shardedMap spreads string keys over independently locked maps, so that
// calls on different keys (publishes to different channels, reads of
// different questions, readers at different addresses) do not contend on
// one lock. It is the one such map of the hub: the waiters by channel, the
// shared reads by question and the held reads by peer are each one.
type shardedMap[V any] struct {
	seed   maphash.Seed
	shards [mapShards]mapShard[V]
}

// mapShards is the number of shards: enough that two cores' worth of
// goroutines rarely meet on one lock, few enough that walking every shard
// (wakeAll, held) costs little.
const mapShards = 64

// mapShard is one shard: its map, and the lock that guards it.
type mapShard[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

func (s *shardedMap[V]) init() {
	s.seed = maphash.MakeSeed()
	for i := range s.shards {
		s.shards[i].m = make(map[string]V)
	}
}

// shard returns the shard of key, for the caller to lock.
func (s *shardedMap[V]) shard(key string) *mapShard[V] {
	return &s.shards[maphash.String(s.seed, key)%mapShards]
}

// each calls f with every shard's map, the shard locked.
func (s *shardedMap[V]) each(f func(m map[string]V)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		f(sh.m)
		sh.mu.Unlock()
	}
}
