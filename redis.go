package comet

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// DefaultRedisURL is the Redis a `store redis` without a URL uses.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisStore keeps the hub in Redis, so that several Caddy instances with
// the same hub name, key prefix and Redis serve one hub: channels, messages,
// clients, sessions and message ids live in Redis, and each instance wakes
// its own held reads from one Redis pub/sub subscription. Standalone Redis,
// Sentinel and Cluster are supported (Cluster is detected by itself).
//
// Caddy refuses to load a configuration whose Redis it cannot reach and
// subscribe to, so a wrong address shows at once; `caddy validate`, which
// provisions modules as `caddy run` does, connects too (`caddy adapt`
// checks the Caddyfile without connecting). Once running, a node whose
// Redis goes away answers `-4 Store unavailable` (HTTP 503), logs the
// outage once, and resumes by itself when Redis is back.
//
// Text fields accept Caddy placeholders such as {env.REDIS_PASSWORD}.
//
// JSON:
//
//	"store": {
//		"store": "redis",
//		"url": "rediss://comet:{env.REDIS_PASSWORD}@redis.internal:6379/0",
//		"addresses": ["redis2.internal:6379"],
//		"username": "comet",
//		"password": "{env.REDIS_PASSWORD}",
//		"sentinel_master": "mymaster",
//		"sentinel_username": "",
//		"sentinel_password": "",
//		"tls_ca_file": "/etc/redis/ca.pem",
//		"key_prefix": "comet",
//		"dial_timeout": "2s",
//		"read_timeout": "2s",
//		"min_replicas": 1,
//		"replica_timeout": "1s"
//	}
//
// Caddyfile:
//
//	store redis [<url>] {
//		addresses         <host:port...>
//		username          <name>
//		password          <password>
//		sentinel_master   <name>
//		sentinel_username <name>
//		sentinel_password <password>
//		tls_ca_file       <path>
//		key_prefix        <prefix>
//		dial_timeout      <duration>
//		read_timeout      <duration>
//		min_replicas      <n>
//		replica_timeout   <duration>
//	}
type RedisStore struct {
	// URL says where Redis is and how to talk to it:
	// redis://[[user][:password]@]host[:port][/db] for plain TCP,
	// rediss://... for TLS (verified against the system's roots, or
	// tls_ca_file), unix://[[user][:password]@]/path/to/redis.sock[?db=N]
	// for a unix socket. With sentinel_master set, host:port is a sentinel.
	// Default: redis://127.0.0.1:6379/0.
	URL string `json:"url,omitempty"`

	// Addresses are more host:port to connect to: the other seed nodes of
	// a Cluster, or the other sentinels. Default: none.
	Addresses []string `json:"addresses,omitempty"`

	// Username is the ACL user to authenticate as. Default: the URL's user,
	// else none (the "default" user).
	Username string `json:"username,omitempty"`

	// Password authenticates Username (or the requirepass password when
	// there is no user). Default: the URL's password, else none.
	Password string `json:"password,omitempty"`

	// SentinelMaster is the name of the master that the sentinels at URL
	// and Addresses watch; setting it turns Sentinel mode on. Default: none
	// (not Sentinel).
	SentinelMaster string `json:"sentinel_master,omitempty"`

	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves, when they require it. Default: none.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// TLSCAFile is a PEM file of the certificate authorities that sign the
	// Redis server's certificate, for a rediss:// URL. Default: the
	// system's roots.
	TLSCAFile string `json:"tls_ca_file,omitempty"`

	// KeyPrefix starts every Redis key of the hub: keys are
	// {<key_prefix>:<hub>}:..., one hash tag per hub. Nodes that share a
	// hub must use the same prefix; different prefixes keep unrelated
	// deployments apart on one Redis. Default: comet.
	KeyPrefix string `json:"key_prefix,omitempty"`

	// DialTimeout is how long connecting to Redis may take. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ReadTimeout is the longest one store operation waits for Redis,
	// reconnecting included; past it the request gets `-4 Store
	// unavailable`. It is also how long a connection may stay silent before
	// it is replaced. Default: 2s.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// MinReplicas makes publishes durable: a publish is acknowledged only
	// once this many replicas of the Redis primary have it (Redis WAIT),
	// and readers see it only then, so a failover that promotes one of
	// them loses no acknowledged message. A publish the replicas do not
	// acknowledge within ReplicaTimeout gets `-4 Store unavailable`, for its
	// publisher to retry with its idempotency key. Every node of a hub must
	// set the same value. Default: 0, a publish is acknowledged once the
	// primary has it.
	MinReplicas int `json:"min_replicas,omitempty"`

	// ReplicaTimeout is how long a publish waits for MinReplicas replicas;
	// it must be under ReadTimeout. Default: 1s.
	ReplicaTimeout caddy.Duration `json:"replica_timeout,omitempty"`

	opts redisstore.Options
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "comet.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// Provision checks the configuration and prepares the connection options;
// it does not connect yet (OpenStore does, once per hub).
func (r *RedisStore) Provision(ctx caddy.Context) error {
	opts, err := r.options(ctx.Logger())
	if err != nil {
		return err
	}
	r.opts = opts
	return nil
}

func (r *RedisStore) options(log *zap.Logger) (redisstore.Options, error) {
	repl := caddy.NewReplacer()
	expand := func(s string) string { return repl.ReplaceKnown(s, "") }

	url := expand(r.URL)
	if url == "" {
		url = DefaultRedisURL
	}
	co, err := rueidis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: say what is wrong, not the URL.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return redisstore.Options{}, fmt.Errorf("redis url: %w", err)
	}
	co.InitAddress = append(co.InitAddress, r.Addresses...)
	if r.Username != "" {
		co.Username = expand(r.Username)
	}
	if r.Password != "" {
		co.Password = expand(r.Password)
	}
	if r.TLSCAFile != "" {
		if co.TLSConfig == nil {
			return redisstore.Options{}, fmt.Errorf("tls_ca_file needs a rediss:// url")
		}
		path := expand(r.TLSCAFile)
		pem, err := os.ReadFile(path)
		if err != nil {
			return redisstore.Options{}, fmt.Errorf("tls_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return redisstore.Options{}, fmt.Errorf("tls_ca_file %s: no PEM certificate in it", path)
		}
		co.TLSConfig.RootCAs = roots
	}
	if m := expand(r.SentinelMaster); m != "" {
		co.Sentinel.MasterSet = m
	}
	if co.Sentinel.MasterSet != "" {
		co.Sentinel.Username = expand(r.SentinelUsername)
		co.Sentinel.Password = expand(r.SentinelPassword)
		if co.TLSConfig != nil {
			co.Sentinel.TLSConfig = co.TLSConfig.Clone()
		}
		// Follow failovers even if a +switch-master event is missed.
		co.Sentinel.TopologyRefreshInterval = 5 * time.Second
	} else if r.SentinelUsername != "" || r.SentinelPassword != "" {
		return redisstore.Options{}, fmt.Errorf("sentinel_username and sentinel_password need sentinel_master")
	}
	switch {
	case r.DialTimeout < 0:
		return redisstore.Options{}, fmt.Errorf("dial_timeout must not be negative")
	case r.ReadTimeout < 0:
		return redisstore.Options{}, fmt.Errorf("read_timeout must not be negative")
	case r.MinReplicas < 0:
		return redisstore.Options{}, fmt.Errorf("min_replicas must not be negative")
	case r.ReplicaTimeout < 0:
		return redisstore.Options{}, fmt.Errorf("replica_timeout must not be negative")
	case r.ReplicaTimeout != 0 && r.MinReplicas == 0:
		return redisstore.Options{}, fmt.Errorf("replica_timeout needs min_replicas")
	}
	readTimeout := cmp.Or(time.Duration(r.ReadTimeout), redisstore.DefaultTimeout)
	replicaTimeout := cmp.Or(time.Duration(r.ReplicaTimeout), redisstore.DefaultReplicaTimeout)
	if r.MinReplicas > 0 && replicaTimeout >= readTimeout {
		return redisstore.Options{}, fmt.Errorf("replica_timeout (%v) must be under read_timeout (%v): a publish waits for its replicas within the store's time", replicaTimeout, readTimeout)
	}
	co.Dialer.Timeout = time.Duration(r.DialTimeout)
	if co.Dialer.Timeout == 0 {
		co.Dialer.Timeout = redisstore.DefaultDialTimeout
	}
	if co.TLSConfig != nil && co.TLSConfig.MinVersion < tls.VersionTLS12 {
		co.TLSConfig.MinVersion = tls.VersionTLS12
	}
	prefix := expand(r.KeyPrefix)
	if prefix == "" {
		prefix = redisstore.DefaultKeyPrefix
	}
	return redisstore.Options{
		Client:         co,
		KeyPrefix:      prefix,
		Timeout:        time.Duration(r.ReadTimeout),
		MinReplicas:    r.MinReplicas,
		ReplicaTimeout: time.Duration(r.ReplicaTimeout),
		Logger:         log,
	}, nil
}

// OpenStore implements StoreOpener: it connects to Redis and subscribes to
// the hub's events.
func (r *RedisStore) OpenStore(so hub.StoreOptions) (hub.Store, error) {
	s, err := redisstore.Open(r.opts, so)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Interface guards.
var (
	_ StoreOpener       = (*RedisStore)(nil)
	_ caddy.Provisioner = (*RedisStore)(nil)
)
