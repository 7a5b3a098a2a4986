package hub

import (
	"strings"
	"time"
)

// publishKeys is the memory store's record of one channel's idempotency
// keys: what a retried publish is checked against. Publishes come in id
// order under the channel's lock, so the keys form a queue, oldest first,
// and forgetting the expired ones and the ones over the limit both take
// from its front.
type publishKeys struct {
	ids   map[string]int64
	queue []keyedPublish // oldest first
}

type keyedPublish struct {
	key string
	id  int64
	at  int64 // Unix nanoseconds of the publish
}

// lookup returns the id published with key within window before now. k
// may be nil: a channel that has had no keyed publish.
func (k *publishKeys) lookup(key string, now int64, window time.Duration) (int64, bool) {
	if k == nil {
		return 0, false
	}
	for len(k.queue) > 0 && now-k.queue[0].at >= int64(window) {
		k.forgetOldest()
	}
	id, ok := k.ids[key]
	return id, ok
}

// remember records that key published id at now, keeping at most maxKeys.
func (k *publishKeys) remember(key string, id, now int64, maxKeys int) {
	if k.ids == nil {
		k.ids = make(map[string]int64)
	}
	// The key may be a view of the whole request body; keep only its bytes.
	key = strings.Clone(key)
	k.ids[key] = id
	k.queue = append(k.queue, keyedPublish{key: key, id: id, at: now})
	for len(k.queue) > max(maxKeys, 1) {
		k.forgetOldest()
	}
}

func (k *publishKeys) forgetOldest() {
	delete(k.ids, k.queue[0].key)
	k.queue[0] = keyedPublish{}
	k.queue = k.queue[1:]
	if len(k.queue) == 0 {
		// A map does not shrink: let a burst of keys go with it.
		k.ids, k.queue = nil, nil
	}
}
