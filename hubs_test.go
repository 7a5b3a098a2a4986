package comet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

func ptr[T any](v T) *T { return &v }

func TestHubSettingsMerge(t *testing.T) {
	full := hubSettings{
		HTTPTimeout:            10 * time.Second,
		SessionTimeout:         20 * time.Second,
		InactiveChannelTimeout: ptr(30 * time.Second),
		MessagesPerChannel:     5,
		MaxMessageSize:         1024,
		MaxChannelsPerRead:     3,
		MaxHeldConnections:     ptr(7),
		MaxHeldPerIP:           ptr(8),
		MaxChannels:            ptr(0),
		MaxClients:             ptr(9),
		MaxRetainedMessages:    10,
	}
	tests := []struct {
		name string
		a, b hubSettings
		want hubSettings
	}{
		{"neither sets anything", hubSettings{}, hubSettings{}, hubSettings{}},
		{"first sets everything", full, hubSettings{}, full},
		{"second sets everything", hubSettings{}, full, full},
		{"both set the same", full, full, full},
		{
			"each sets different settings",
			hubSettings{HTTPTimeout: time.Second, MaxHeldConnections: ptr(0)},
			hubSettings{SessionTimeout: time.Minute, MessagesPerChannel: 9},
			hubSettings{HTTPTimeout: time.Second, SessionTimeout: time.Minute, MessagesPerChannel: 9, MaxHeldConnections: ptr(0)},
		},
		// 0 is a setting for these two (expiry off, no limit), not "unset".
		{"inactive_channel_timeout 0 on one route", hubSettings{}, hubSettings{InactiveChannelTimeout: ptr(time.Duration(0))},
			hubSettings{InactiveChannelTimeout: ptr(time.Duration(0))}},
		{"max_held_connections 0 on one route", hubSettings{MaxHeldConnections: ptr(0)}, hubSettings{},
			hubSettings{MaxHeldConnections: ptr(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.merge(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if got.config() != tt.want.config() || (got.InactiveChannelTimeout == nil) != (tt.want.InactiveChannelTimeout == nil) ||
				(got.MaxHeldConnections == nil) != (tt.want.MaxHeldConnections == nil) {
				t.Errorf("merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHubSettingsMergeConflicts(t *testing.T) {
	tests := []struct {
		setting string
		a, b    hubSettings
		values  string
	}{
		{"http_timeout", hubSettings{HTTPTimeout: 10 * time.Second}, hubSettings{HTTPTimeout: 20 * time.Second}, "10s and 20s"},
		{"session_timeout", hubSettings{SessionTimeout: time.Minute}, hubSettings{SessionTimeout: time.Second}, "1m0s and 1s"},
		{"inactive_channel_timeout", hubSettings{InactiveChannelTimeout: ptr(time.Duration(0))},
			hubSettings{InactiveChannelTimeout: ptr(90 * time.Second)}, "0s and 1m30s"},
		{"messages_per_channel", hubSettings{MessagesPerChannel: 100}, hubSettings{MessagesPerChannel: 10}, "100 and 10"},
		{"max_message_size", hubSettings{MaxMessageSize: 1 << 10}, hubSettings{MaxMessageSize: 1 << 20}, "1024 and 1048576"},
		{"max_channels_per_read", hubSettings{MaxChannelsPerRead: 64}, hubSettings{MaxChannelsPerRead: 1}, "64 and 1"},
		{"max_held_connections", hubSettings{MaxHeldConnections: ptr(0)}, hubSettings{MaxHeldConnections: ptr(5)}, "0 and 5"},
		{"max_held_per_ip", hubSettings{MaxHeldPerIP: ptr(0)}, hubSettings{MaxHeldPerIP: ptr(5)}, "0 and 5"},
		{"max_channels", hubSettings{MaxChannels: ptr(0)}, hubSettings{MaxChannels: ptr(5)}, "0 and 5"},
		{"max_clients", hubSettings{MaxClients: ptr(10)}, hubSettings{MaxClients: ptr(0)}, "10 and 0"},
		{"max_retained_messages", hubSettings{MaxRetainedMessages: 10}, hubSettings{MaxRetainedMessages: 20}, "10 and 20"},
		{"max_reply_size", hubSettings{MaxReplySize: 1 << 20}, hubSettings{MaxReplySize: 2 << 20}, "1048576 and 2097152"},
		{"idempotency_window", hubSettings{IdempotencyWindow: time.Minute}, hubSettings{IdempotencyWindow: time.Hour}, "1m0s and 1h0m0s"},
		{"max_idempotency_keys", hubSettings{MaxIdempotencyKeys: 10}, hubSettings{MaxIdempotencyKeys: 20}, "10 and 20"},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			_, err := tt.a.merge(tt.b)
			if err == nil {
				t.Fatal("no error for different values")
			}
			if want := tt.setting + " differs between routes (" + tt.values + ")"; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestHubSettingsConfig(t *testing.T) {
	if got := (hubSettings{}).config(); got != (hub.Config{}) {
		t.Errorf("unset settings give %+v, want the zero Config (hub defaults)", got)
	}
	got := (hubSettings{InactiveChannelTimeout: ptr(time.Duration(0)), MaxHeldConnections: ptr(0)}).config()
	if got.InactiveChannelTimeout >= 0 {
		t.Errorf("inactive_channel_timeout 0 gives %v, want a negative value (expiry off)", got.InactiveChannelTimeout)
	}
	if n := got.Normalize(); n.InactiveChannelTimeout >= 0 {
		t.Errorf("inactive_channel_timeout 0 normalizes to %v, want expiry off", n.InactiveChannelTimeout)
	}
	got = (hubSettings{InactiveChannelTimeout: ptr(time.Minute), MaxHeldConnections: ptr(3), MaxHeldPerIP: ptr(2)}).config()
	if got.InactiveChannelTimeout != time.Minute || got.MaxHeldConnections != 3 || got.MaxHeldPerPeer != 2 {
		t.Errorf("got %+v", got)
	}
}

func TestCompactJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{`{"store":"memory"}`, `{"store":"memory"}`},
		{"{ \"store\" : \"redis\",\n\t\"address\": \"redis://x\" }", `{"store":"redis","address":"redis://x"}`},
		{`not json`, `not json`},
	}
	for _, tt := range tests {
		if got := string(compactJSON(json.RawMessage(tt.in))); got != tt.want {
			t.Errorf("compactJSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStoreLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "memory"},
		{`{"store":"memory"}`, "memory"},
		{`{"address":"redis://x","store":"redis"}`, "redis"},
	}
	for _, tt := range tests {
		if got := storeLabel(json.RawMessage(tt.in)); got != tt.want {
			t.Errorf("storeLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// newTestApp is a comet app as Provision sets it up, without a Caddy
// context; its hubs are released when the test ends.
func newTestApp(t *testing.T) *App {
	a := &App{logger: zap.NewNop(), hubs: make(map[string]*hubUse), metrics: newMetricsCollector()}
	t.Cleanup(func() {
		if err := a.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return a
}

func memoryOpener() (StoreOpener, error) { return MemoryStore{}, nil }

// A setting made on one route of a hub applies to the hub, whichever route
// comes first.
func TestAppHubSettingFromOneRoute(t *testing.T) {
	for _, order := range []string{"set first", "set second"} {
		t.Run(order, func(t *testing.T) {
			a := newTestApp(t)
			name := t.Name()
			set := hubSettings{HTTPTimeout: 7 * time.Second, InactiveChannelTimeout: ptr(time.Duration(0))}
			first, second := set, hubSettings{}
			if order == "set second" {
				first, second = second, first
			}
			h1, err := a.hub(name, first, nil, memoryOpener)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := a.hub(name, second, nil, memoryOpener)
			if err != nil {
				t.Fatal(err)
			}
			if h1 != h2 {
				t.Fatal("two routes naming one hub got different hubs")
			}
			cfg := h1.Config()
			if cfg.HTTPTimeout != 7*time.Second || cfg.InactiveChannelTimeout >= 0 {
				t.Errorf("hub config %+v, want http_timeout 7s and channel expiry off", cfg)
			}
		})
	}
}

func TestAppHubConflictingSetting(t *testing.T) {
	a := newTestApp(t)
	name := t.Name()
	if _, err := a.hub(name, hubSettings{HTTPTimeout: 10 * time.Second}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	_, err := a.hub(name, hubSettings{HTTPTimeout: 20 * time.Second}, nil, memoryOpener)
	if err == nil {
		t.Fatal("no error for two routes with different http_timeout")
	}
	if want := `hub "` + name + `": http_timeout differs between routes (10s and 20s)`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// Another hub name is another hub, with its own settings.
	if _, err := a.hub(name+"-other", hubSettings{HTTPTimeout: 20 * time.Second}, nil, memoryOpener); err != nil {
		t.Errorf("a different hub name: %v", err)
	}
}

// "store memory" is what no store line means: routes (and configurations
// across a reload) that differ only in spelling it out share one hub.
func TestAppHubExplicitMemoryStoreIsTheDefault(t *testing.T) {
	explicit := json.RawMessage(`{"store": "memory"}`)
	a := newTestApp(t)
	name := t.Name()
	h1, err := a.hub(name, hubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := a.hub(name, hubSettings{}, explicit, memoryOpener)
	if err != nil {
		t.Fatalf("route with store memory beside a route without a store: %v", err)
	}
	if h1 != h2 {
		t.Error("routes got different hubs")
	}

	// A reload: the new configuration's app finds the same hub while the
	// old one still holds it.
	reloaded := newTestApp(t)
	h3, err := reloaded.hub(name, hubSettings{}, explicit, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if h3 != h1 {
		t.Error("adding 'store memory' in a reload started a new, empty hub")
	}
}

func TestAppHubDifferentStores(t *testing.T) {
	a := newTestApp(t)
	name := t.Name()
	if _, err := a.hub(name, hubSettings{}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	other := json.RawMessage(`{"store":"redis","address":"redis://127.0.0.1:1/0"}`)
	_, err := a.hub(name, hubSettings{}, other, func() (StoreOpener, error) {
		t.Error("opened a store for a hub that exists")
		return nil, nil
	})
	if err == nil || !strings.Contains(err.Error(), "different stores (memory and redis)") {
		t.Errorf("error %v, want one naming the two stores", err)
	}
}

// The hub keeps its state when a reload provisions a new configuration
// before the old one is cleaned up, and closes once neither uses it.
func TestAppHubSurvivesReload(t *testing.T) {
	name := t.Name()
	old := &App{logger: zap.NewNop(), hubs: make(map[string]*hubUse), metrics: newMetricsCollector()}
	h1, err := old.hub(name, hubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.RegisterChannel(t.Context(), "kept", false, 0); err != nil {
		t.Fatal(err)
	}
	reloaded := newTestApp(t)
	h2, err := reloaded.hub(name, hubSettings{MessagesPerChannel: 3}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if h2 != h1 {
		t.Fatal("the reloaded configuration got a new hub")
	}
	if got := h2.Config().MessagesPerChannel; got != 3 {
		t.Errorf("messages_per_channel after reload = %d, want the new configuration's 3", got)
	}
	if err := h2.RegisterChannel(t.Context(), "kept", false, 0); !errors.Is(err, hub.ErrChannelExists) {
		t.Errorf("registering the channel again after reload: %v, want %v", err, hub.ErrChannelExists)
	}
}

// Through Caddy's own provisioning of an adapted Caddyfile: two routes that
// name one hub with different settings are a configuration error naming the
// setting; spelling out the default store is not.
func TestAppConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		site    string
		wantErr string
	}{
		{"same hub, one route sets it", "\thandle /a/* {\n\t\tcomet {\n\t\t\thttp_timeout 10s\n\t\t}\n\t}\n\thandle /b/* {\n\t\tcomet {\n\t\t\tallow subscribe\n\t\t}\n\t}\n", ""},
		{"same hub, different settings", "\thandle /a/* {\n\t\tcomet {\n\t\t\thttp_timeout 10s\n\t\t}\n\t}\n\thandle /b/* {\n\t\tcomet {\n\t\t\thttp_timeout 20s\n\t\t}\n\t}\n", "http_timeout differs between routes (10s and 20s)"},
		{"different hubs, different settings", "\thandle /a/* {\n\t\tcomet {\n\t\t\thub a\n\t\t\thttp_timeout 10s\n\t\t}\n\t}\n\thandle /b/* {\n\t\tcomet {\n\t\t\thub b\n\t\t\thttp_timeout 20s\n\t\t}\n\t}\n", ""},
		{"default and explicit memory store", "\thandle /a/* {\n\t\tcomet\n\t}\n\thandle /b/* {\n\t\tcomet {\n\t\t\tstore memory\n\t\t}\n\t}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateCaddyfile(t, ":0 {\n"+tt.site+"}\n")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("valid configuration refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// validateCaddyfile adapts a Caddyfile and has Caddy provision the result
// without starting it, as `caddy validate` does.
func validateCaddyfile(t *testing.T, text string) error {
	t.Helper()
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	// Keep Caddy's storage (locks, certificates) out of $HOME.
	cfg.StorageRaw = caddyconfig.JSONModuleObject(map[string]string{"root": t.TempDir()}, "module", "file_system", nil)
	return caddy.Validate(&cfg)
}

// Hub sizes: unset takes the hub's default, 0 is no limit.
func TestHubSettingsLimits(t *testing.T) {
	cfg := (hubSettings{}).config().Normalize()
	if cfg.MaxChannels != hub.DefaultMaxChannels || cfg.MaxClients != hub.DefaultMaxClients || cfg.MaxRetainedMessages != hub.DefaultMaxRetainedMessages {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg = (hubSettings{MaxChannels: ptr(0), MaxClients: ptr(0)}).config().Normalize()
	if cfg.MaxChannels >= 0 || cfg.MaxClients >= 0 {
		t.Errorf("0 gives %d and %d, want no limit (negative)", cfg.MaxChannels, cfg.MaxClients)
	}
	cfg = (hubSettings{MaxChannels: ptr(3), MaxClients: ptr(4), MaxRetainedMessages: 5, MessagesPerChannel: 5}).config().Normalize()
	if cfg.MaxChannels != 3 || cfg.MaxClients != 4 || cfg.MaxRetainedMessages != 5 {
		t.Errorf("set: %+v", cfg)
	}
}

// messages_per_channel may not exceed max_retained_messages, set or by
// default, on one route or across the routes of a hub.
func TestHubSettingsCheck(t *testing.T) {
	for _, tt := range []struct {
		s    hubSettings
		want string
	}{
		{hubSettings{}, ""},
		{hubSettings{MessagesPerChannel: 1000}, ""},
		{hubSettings{MessagesPerChannel: 1001}, "messages_per_channel 1001 is over max_retained_messages 1000"},
		{hubSettings{MaxRetainedMessages: 50}, "messages_per_channel 100 is over max_retained_messages 50"},
		{hubSettings{MaxRetainedMessages: 50, MessagesPerChannel: 50}, ""},
		// max_reply_size must hold one message of max_message_size in a
		// read of max_channels_per_read channels with the longest ids.
		{hubSettings{MaxReplySize: int64(hub.MinReplySize(hub.DefaultMaxMessageSize, hub.DefaultMaxChannelsPerRead))}, ""},
		{hubSettings{MaxReplySize: int64(hub.MinReplySize(hub.DefaultMaxMessageSize, hub.DefaultMaxChannelsPerRead)) - 1},
			"max_reply_size 492608 cannot hold one message of max_message_size 65536 in a read of max_channels_per_read 64: it must be at least 492609"},
		{hubSettings{MaxMessageSize: 1 << 20}, "max_reply_size 1048576 cannot hold one message of max_message_size 1048576 in a read of max_channels_per_read 64: it must be at least 6390849"},
		{hubSettings{MaxMessageSize: 1 << 20, MaxReplySize: 8 << 20}, ""},
	} {
		err := tt.s.check()
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("check(%+v) = %v, want %q", tt.s, err, tt.want)
		}
	}
	merged, err := (hubSettings{MaxRetainedMessages: 50, MessagesPerChannel: 10}).merge(hubSettings{MessagesPerChannel: 10})
	if err != nil || merged.check() != nil {
		t.Errorf("merged settings: %v, %v", err, merged.check())
	}
}
