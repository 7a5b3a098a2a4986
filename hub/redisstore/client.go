package redisstore

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// newClient connects to Redis as co says. For a Sentinel deployment it
// returns a sentinelClient, which moves to a new master as soon as any
// sentinel announces it; for a Cluster, a clusterClient, which moves to the
// new primary of the hub's slot (slotKey's) as soon as it serves it. Either
// then sends on switched (without blocking), so that a subscription waiting
// to be retried is retried at once.
func newClient(co rueidis.ClientOption, log *zap.Logger, switched chan<- struct{}, slotKey string, grace time.Duration) (rueidis.Client, error) {
	if co.Sentinel.MasterSet != "" {
		return newSentinelClient(co, log, switched)
	}
	client, err := rueidis.NewClient(co)
	if err != nil || client.Mode() != rueidis.ClientModeCluster {
		return client, err
	}
	return newClusterClient(client, co, log, switched, slotKey, grace), nil
}

// notify sends on ch unless a value already waits there.
func notify(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// swappable is a rueidis.Client whose calls go to a rueidis client that
// can be replaced while calls run: each call uses the one current when it
// starts.
type swappable struct {
	refMu sync.Mutex // guards cur's replacement with the receives it ends
	cur   *clientRef
}

// clientRef is one rueidis client of a swappable, with the subscriptions
// (Receive calls) running on it.
type clientRef struct {
	rueidis.Client
	receives map[*context.CancelFunc]struct{}
}

func (c *swappable) ref() *clientRef {
	c.refMu.Lock()
	defer c.refMu.Unlock()
	return c.cur
}

func (c *swappable) client() rueidis.Client { return c.ref().Client }

// swap makes next the current client and ends the subscriptions of the one
// it replaces, which it returns, so that they are made again on next: a
// subscription waiting for a node that hangs would otherwise hold on until
// the connection times out. The caller closes the old client.
func (c *swappable) swap(next rueidis.Client) rueidis.Client {
	c.refMu.Lock()
	old := c.cur
	c.cur = &clientRef{Client: next, receives: map[*context.CancelFunc]struct{}{}}
	var cancels []*context.CancelFunc
	if old != nil {
		cancels = slices.Collect(maps.Keys(old.receives))
	}
	c.refMu.Unlock()
	for _, cancel := range cancels {
		(*cancel)()
	}
	if old == nil {
		return nil
	}
	return old.Client
}

// Receive subscribes on the current client until ctx ends, the
// subscription is lost, or the client is replaced.
func (c *swappable) Receive(ctx context.Context, subscribe rueidis.Completed, fn func(msg rueidis.PubSubMessage)) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.refMu.Lock()
	ref := c.cur
	ref.receives[&cancel] = struct{}{}
	c.refMu.Unlock()
	defer func() {
		c.refMu.Lock()
		delete(ref.receives, &cancel)
		c.refMu.Unlock()
	}()
	return ref.Receive(rctx, subscribe, fn)
}

// The rest of rueidis.Client goes to the current client.

func (c *swappable) B() rueidis.Builder { return c.client().B() }

func (c *swappable) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return c.client().Do(ctx, cmd)
}

func (c *swappable) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	return c.client().DoMulti(ctx, multi...)
}

func (c *swappable) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	return c.client().DoCache(ctx, cmd, ttl)
}

func (c *swappable) DoMultiCache(ctx context.Context, multi ...rueidis.CacheableTTL) []rueidis.RedisResult {
	return c.client().DoMultiCache(ctx, multi...)
}

func (c *swappable) DoStream(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResultStream {
	return c.client().DoStream(ctx, cmd)
}

func (c *swappable) DoMultiStream(ctx context.Context, multi ...rueidis.Completed) rueidis.MultiRedisResultStream {
	return c.client().DoMultiStream(ctx, multi...)
}

func (c *swappable) Dedicated(fn func(rueidis.DedicatedClient) error) error {
	return c.client().Dedicated(fn)
}

func (c *swappable) Dedicate() (rueidis.DedicatedClient, func()) { return c.client().Dedicate() }

func (c *swappable) Nodes() map[string]rueidis.Client { return c.client().Nodes() }

func (c *swappable) Mode() rueidis.ClientMode { return c.client().Mode() }
