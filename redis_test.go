package comet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// parseStore runs a comet block through the handler's Caddyfile parser and
// decodes the redis store it produced.
func parseStore(t *testing.T, input string) (RedisStore, error) {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		return RedisStore{}, err
	}
	var got struct {
		RedisStore
		Store string `json:"store"`
	}
	if err := json.Unmarshal(h.StoreRaw, &got); err != nil {
		t.Fatalf("store JSON %s: %v", h.StoreRaw, err)
	}
	if got.Store != "redis" {
		t.Fatalf("store module %q in %s, want redis", got.Store, h.StoreRaw)
	}
	return got.RedisStore, nil
}

func TestRedisStoreCaddyfile(t *testing.T) {
	got, err := parseStore(t, `comet {
		store redis rediss://redis.internal:6380/2 {
			addresses         redis2.internal:6380 redis3.internal:6380
			username          comet
			password          {env.REDIS_PASSWORD}
			sentinel_master   mymaster
			sentinel_username watcher
			sentinel_password {env.SENTINEL_PASSWORD}
			tls_ca_file       /etc/redis/ca.pem
			key_prefix        myapp
			dial_timeout      3s
			read_timeout      3
			min_replicas      2
			replica_timeout   500ms
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	want := RedisStore{
		URL:              "rediss://redis.internal:6380/2",
		Addresses:        []string{"redis2.internal:6380", "redis3.internal:6380"},
		Username:         "comet",
		Password:         "{env.REDIS_PASSWORD}",
		SentinelMaster:   "mymaster",
		SentinelUsername: "watcher",
		SentinelPassword: "{env.SENTINEL_PASSWORD}",
		TLSCAFile:        "/etc/redis/ca.pem",
		KeyPrefix:        "myapp",
		DialTimeout:      caddy.Duration(3 * time.Second),
		ReadTimeout:      caddy.Duration(3 * time.Second),
		MinReplicas:      2,
		ReplicaTimeout:   caddy.Duration(500 * time.Millisecond),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	bare, err := parseStore(t, "comet {\n\tstore redis\n}")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bare, RedisStore{}) {
		t.Fatalf("bare `store redis`: %+v, want all defaults", bare)
	}
}

func TestRedisStoreCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		input, want string
		line        int
	}{
		{"comet {\n store redis redis://a redis://b\n}", "wrong argument count", 2},
		{"comet {\n store redis {\n  database 2\n }\n}", `unknown store redis option "database"`, 3},
		{"comet {\n store redis {\n  username\n }\n}", "wrong argument count", 3},
		{"comet {\n store redis {\n  username a b\n }\n}", "wrong argument count", 3},
		{"comet {\n store redis {\n  addresses\n }\n}", "wrong argument count", 3},
		{"comet {\n store redis {\n\n  dial_timeout soon\n }\n}", `invalid duration "soon"`, 4},
		{"comet {\n store redis {\n  read_timeout -1\n }\n}", "must not be negative", 3},
		{"comet {\n store redis {\n  min_replicas 0\n }\n}", `min_replicas: want an integer of at least 1, got "0"`, 3},
		{"comet {\n store redis {\n  min_replicas one\n }\n}", `min_replicas: want an integer of at least 1, got "one"`, 3},
	} {
		_, err := parseStore(t, tc.input)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.input, err, tc.want)
			continue
		}
		if line := fmt.Sprintf("Testfile:%d", tc.line); !strings.Contains(err.Error(), line) {
			t.Errorf("%q: error %q does not name line %d", tc.input, err, tc.line)
		}
	}
}

func TestRedisStoreOptions(t *testing.T) {
	t.Setenv("COMET_TEST_REDIS_PASSWORD", "s3cret")
	r := RedisStore{
		URL:       "redis://alice@10.0.0.1:7000/3",
		Addresses: []string{"10.0.0.2:7000"},
		Password:  "{env.COMET_TEST_REDIS_PASSWORD}",
		KeyPrefix: "app",
	}
	opts, err := r.options(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	co := opts.Client
	if !reflect.DeepEqual(co.InitAddress, []string{"10.0.0.1:7000", "10.0.0.2:7000"}) ||
		co.Username != "alice" || co.Password != "s3cret" || co.SelectDB != 3 || co.TLSConfig != nil ||
		co.Sentinel.MasterSet != "" || co.Dialer.Timeout != 2*time.Second || opts.KeyPrefix != "app" || opts.Timeout != 0 {
		t.Fatalf("options: %+v", opts)
	}

	// Defaults.
	opts, err = (&RedisStore{}).options(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opts.Client.InitAddress, []string{"127.0.0.1:6379"}) || opts.KeyPrefix != "comet" {
		t.Fatalf("default options: %+v", opts)
	}

	// Sentinel: the URL and addresses are the sentinels, TLS applies to
	// them too.
	opts, err = (&RedisStore{
		URL: "rediss://s1:26379", Addresses: []string{"s2:26379"},
		SentinelMaster: "mymaster", SentinelPassword: "watch", ReadTimeout: caddy.Duration(time.Second),
	}).options(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	co = opts.Client
	if co.Sentinel.MasterSet != "mymaster" || co.Sentinel.Password != "watch" || co.Sentinel.TLSConfig == nil ||
		co.TLSConfig == nil || len(co.InitAddress) != 2 || opts.Timeout != time.Second {
		t.Fatalf("sentinel options: %+v", opts)
	}
}

func TestRedisStoreOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    RedisStore
		want string
	}{
		{RedisStore{URL: "http://127.0.0.1:6379"}, "invalid URL scheme"},
		{RedisStore{URL: "redis://127.0.0.1:6379/zero"}, "invalid database number"},
		{RedisStore{TLSCAFile: notPEM}, "tls_ca_file needs a rediss:// url"},
		{RedisStore{URL: "rediss://127.0.0.1", TLSCAFile: filepath.Join(dir, "missing.pem")}, "no such file"},
		{RedisStore{URL: "rediss://127.0.0.1", TLSCAFile: notPEM}, "no PEM certificate"},
		{RedisStore{SentinelPassword: "x"}, "need sentinel_master"},
		{RedisStore{DialTimeout: -1}, "dial_timeout must not be negative"},
		{RedisStore{MinReplicas: -1}, "min_replicas must not be negative"},
		{RedisStore{ReplicaTimeout: caddy.Duration(time.Second)}, "replica_timeout needs min_replicas"},
		{RedisStore{MinReplicas: 1, ReplicaTimeout: caddy.Duration(2 * time.Second)}, "replica_timeout (2s) must be under read_timeout (2s)"},
		{RedisStore{MinReplicas: 1, ReadTimeout: caddy.Duration(time.Second)}, "replica_timeout (1s) must be under read_timeout (1s)"},
	} {
		_, err := tc.r.options(zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.r, err, tc.want)
		}
	}
	// A URL that does not parse holds a password perhaps: it must not
	// show in the error.
	_, err := (&RedisStore{URL: "redis://u:hunter2@host:port:x"}).options(zap.NewNop())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL error %v: want an error without the password", err)
	}
}

// The module opens a working store under the hub's name, over TLS with
// tls_ca_file here.
func TestRedisStoreOpens(t *testing.T) {
	srv := redistest.StartTLS(t)
	r := RedisStore{URL: srv.URL(), TLSCAFile: srv.CAFile, KeyPrefix: "modtest"}
	opts, err := r.options(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r.opts = opts
	st, err := r.OpenStore(hub.StoreOptions{Hub: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateChannel(ctx, hub.ChannelSpec{ID: "c", MaxMessages: 3}, hub.Expiry{}); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("over TLS")
	if _, err := st.Publish(ctx, hub.Publication{Channel: "c", Encoded: enc}, time.Now(), hub.Expiry{}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Read(ctx, hub.ReadQuery{Channels: []string{"c"}}, hub.Expiry{})
	if err != nil || !res.HasMessages() || res.Channels[0].Messages[0].Content() != "over TLS" {
		t.Fatalf("read back: %+v %v", res, err)
	}
}

// A unix:// URL reaches Redis over its unix socket.
func TestRedisStoreUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redistest.Start(t, "--unixsocket", sock)
	r := RedisStore{URL: "unix://" + sock + "?db=1"}
	opts, err := r.options(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r.opts = opts
	st, err := r.OpenStore(hub.StoreOptions{Hub: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateChannel(context.Background(), hub.ChannelSpec{ID: "c", MaxMessages: 1}, hub.Expiry{}); err != nil {
		t.Fatalf("over the unix socket: %v", err)
	}
}
