package hub

import (
	"hash/maphash"
	"sync"
)

// shardedMap spreads keys over independently locked maps, so that
// calls on different keys (publishes to different channels, reads of
// different questions, readers at different addresses) do not contend on
// one lock. It is the one such map of the hub: the waiters by channel, the
// shared reads by question and the held reads by peer are each one.
type shardedMap[K comparable, V any] struct {
	seed   maphash.Seed
	hash   func(maphash.Seed, K) uint64
	shards [mapShards]mapShard[K, V]
}

// mapShards is the number of shards: enough that two cores' worth of
// goroutines rarely meet on one lock, few enough that walking every shard
// (wakeAll, held) costs little.
const mapShards = 64

// mapShard is one shard: its map, and the lock that guards it.
type mapShard[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// init readies the map, whose keys hash picks the shards of
// (maphash.String for string keys).
func (s *shardedMap[K, V]) init(hash func(maphash.Seed, K) uint64) {
	s.seed, s.hash = maphash.MakeSeed(), hash
	for i := range s.shards {
		s.shards[i].m = make(map[K]V)
	}
}

// shard returns the shard of key, for the caller to lock.
func (s *shardedMap[K, V]) shard(key K) *mapShard[K, V] {
	return &s.shards[s.hash(s.seed, key)%mapShards]
}

// each calls f with every shard's map, the shard locked.
func (s *shardedMap[K, V]) each(f func(m map[K]V)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		f(sh.m)
		sh.mu.Unlock()
	}
}
