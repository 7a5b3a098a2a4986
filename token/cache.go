package token

import (
	"strings"
	"sync"
	"time"
)

// Bounds of a route's cache of verified tokens. A long-polling page sends
// its token with every read, and checking an HS256 signature, let alone an
// RS256 or ES256 one, costs more than the rest of the check; the cache
// makes a token's second and later reads a map lookup. Only tokens that
// verified are cached, so a client must hold validly signed tokens to fill
// it, and these bounds keep even many of them to a few MiB.
const (
	// maxCachedTokens is the most tokens the cache holds.
	maxCachedTokens = 16384
	// maxCachedBytes bounds the cache's memory: the tokens, the channel ids
	// of their grants and an estimate of the overhead of each entry.
	maxCachedBytes = 8 << 20
)

// cacheEntryOverhead estimates what an entry costs beyond its strings: the
// map's slot, the grant and the slices' headers.
const cacheEntryOverhead = 160

// cache maps tokens that verified to what they grant, until they
// expire. It is bounded in entries and bytes by keeping two generations:
// entries go into the current one, and when it is full it becomes the old
// one, whose entries are dropped, and a new one begins. A token found in
// the old generation moves to the current one, so that tokens in use stay
// and the ones no longer sent leave within two generations, without a list
// to keep in order. Each generation holds at most half the bounds.
type cache struct {
	mu         sync.Mutex
	maxEntries int // per generation
	maxBytes   int // per generation
	cur, old   map[string]cachedGrant
	curBytes   int
}

// cachedGrant is a verified token's grant and the instant it stops being
// taken (exp plus leeway).
type cachedGrant struct {
	grant *Grant
	until time.Time
	cost  int
}

func newCache(maxEntries, maxBytes int) *cache {
	return &cache{
		maxEntries: max(maxEntries/2, 1),
		maxBytes:   max(maxBytes/2, 1),
		cur:        make(map[string]cachedGrant),
	}
}

// get returns the grant of a cached token that is still valid at now, or
// nil. An expired token is dropped, so that verifying it again reports why.
func (c *cache) get(token string, now time.Time) *Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[token]; ok {
		if !now.Before(e.until) {
			delete(c.cur, token)
			c.curBytes -= e.cost
			return nil
		}
		return e.grant
	}
	e, ok := c.old[token]
	if !ok {
		return nil
	}
	delete(c.old, token)
	if !now.Before(e.until) {
		return nil
	}
	c.add(token, e)
	return e.grant
}

// put caches a token that verified at now, valid until until.
func (c *cache) put(token string, g *Grant, until, now time.Time) {
	if !now.Before(until) {
		return
	}
	cost := len(token) + cacheEntryOverhead
	for _, ids := range [][]string{g.Subscribe, g.Publish} {
		for _, id := range ids {
			cost += len(id) + 16
		}
	}
	if cost > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[token]; ok {
		return // another request verified it meanwhile
	}
	// The token may be a slice of the request's query; the cache keeps
	// only the token's bytes.
	c.add(strings.Clone(token), cachedGrant{grant: g, until: until, cost: cost})
}

// add puts an entry into the current generation, beginning a new one when
// it is full. The caller holds mu.
func (c *cache) add(token string, e cachedGrant) {
	if len(c.cur) >= c.maxEntries || c.curBytes+e.cost > c.maxBytes {
		c.old, c.cur, c.curBytes = c.cur, make(map[string]cachedGrant), 0
	}
	c.cur[token] = e
	c.curBytes += e.cost
}

// size returns how many tokens the cache holds and their cost in bytes,
// the old generation's included.
func (c *cache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bytes = c.curBytes
	for _, e := range c.old {
		bytes += e.cost
	}
	return len(c.cur) + len(c.old), bytes
}
