package redisstore

import (
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultKeyPrefix   = "comet"
	DefaultTimeout     = 2 * time.Second
	DefaultDialTimeout = 2 * time.Second
	// DefaultReplicaTimeout is how long a publish waits for MinReplicas
	// replicas to acknowledge it when Options.ReplicaTimeout is zero.
	DefaultReplicaTimeout = time.Second
)

// Options configures a Store.
type Options struct {
	// Client says how to reach Redis: InitAddress, Username, Password,
	// SelectDB, TLSConfig, Sentinel.MasterSet, Dialer.Timeout. With
	// Sentinel.MasterSet set, InitAddress lists the sentinels, all of them:
	// the store subscribes to +switch-master on each and moves to a new
	// master on the first announcement, so one hung sentinel cannot keep
	// it on a failed master; zero Sentinel.Dialer.Timeout then means
	// Dialer.Timeout. Otherwise the client finds out by itself whether the
	// addresses are a Cluster.
	// Zero Dialer.Timeout means DefaultDialTimeout; zero ConnWriteTimeout
	// means Timeout. The store disables client-side caching (it does not
	// use it), uses one always-pipelined connection per Redis node
	// (overriding PipelineMultiplex and AlwaysPipelining, so that a Redis
	// restart cannot leave a dead connection behind a working one) and
	// names its connections "caddy-comet" unless ClientName is set.
	Client rueidis.ClientOption

	// KeyPrefix starts every key of the store, after the '{' of the hash
	// tag and before the hub's name (hub.StoreOptions.Hub). Stores with the
	// same KeyPrefix and hub name on one Redis share their state: that is
	// how several nodes serve one hub. Default: DefaultKeyPrefix.
	KeyPrefix string

	// Timeout is the longest one store call waits for Redis, reconnecting
	// included; past it the call fails as 'Store unavailable'. Default:
	// DefaultTimeout.
	Timeout time.Duration

	// MinReplicas, when above 0, makes a publish durable: it is
	// acknowledged only once that many replicas of the Redis primary have
	// it (WAIT), and readers see it only then. A publish they do not
	// acknowledge within ReplicaTimeout fails as 'Store unavailable', and
	// its publisher retries it, with the same idempotency key to publish it
	// once. See docs/scaling.md ("Durable publishes"). Every node
	// of a hub must set the same value. Default: 0, acknowledged once the
	// primary has it.
	MinReplicas int

	// ReplicaTimeout is how long a durable publish waits for MinReplicas
	// replicas; it must be under Timeout. Default: DefaultReplicaTimeout.
	ReplicaTimeout time.Duration

	// Logger receives the store's outage reports (one when Redis becomes
	// unreachable, one when it is back). Default: no logging.
	Logger *zap.Logger
}
