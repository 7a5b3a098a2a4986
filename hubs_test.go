package comet

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

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
	a := newAppWithoutCleanup()
	t.Cleanup(func() {
		if err := a.Cleanup(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// newAppWithoutCleanup is newTestApp without the cleanup, for the old
// configuration of a reload, which the test cleans up itself.
func newAppWithoutCleanup() *App {
	return &App{logger: zap.NewNop(), configHubs: make(map[string]*hubUse), metrics: newMetricsCollector()}
}

func memoryOpener() (StoreOpener, error) { return MemoryStore{}, nil }

// A setting made on one route of a hub applies to the hub, whichever route
// comes first.
func TestAppHubSettingFromOneRoute(t *testing.T) {
	for _, order := range []string{"set first", "set second"} {
		t.Run(order, func(t *testing.T) {
			a := newTestApp(t)
			name := t.Name()
			set := HubSettings{HTTPTimeout: caddy.Duration(7 * time.Second), InactiveChannelTimeout: ptr(caddy.Duration(0))}
			first, second := set, HubSettings{}
			if order == "set second" {
				first, second = second, first
			}
			h1, err := a.useHub(name, first, nil, memoryOpener)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := a.useHub(name, second, nil, memoryOpener)
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
	if _, err := a.useHub(name, HubSettings{HTTPTimeout: caddy.Duration(10 * time.Second)}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	_, err := a.useHub(name, HubSettings{HTTPTimeout: caddy.Duration(20 * time.Second)}, nil, memoryOpener)
	if err == nil {
		t.Fatal("no error for two routes with different http_timeout")
	}
	if want := `hub "` + name + `": http_timeout differs between routes (10s and 20s)`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// Another hub name is another hub, with its own settings.
	if _, err := a.useHub(name+"-other", HubSettings{HTTPTimeout: caddy.Duration(20 * time.Second)}, nil, memoryOpener); err != nil {
		t.Errorf("a different hub name: %v", err)
	}
}

// "store memory" is what no store line means: routes (and configurations
// across a reload) that differ only in spelling it out share one hub.
func TestAppHubExplicitMemoryStoreIsTheDefault(t *testing.T) {
	explicit := json.RawMessage(`{"store": "memory"}`)
	a := newTestApp(t)
	name := t.Name()
	h1, err := a.useHub(name, HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := a.useHub(name, HubSettings{}, explicit, memoryOpener)
	if err != nil {
		t.Fatalf("route with store memory beside a route without a store: %v", err)
	}
	if h1 != h2 {
		t.Error("routes got different hubs")
	}

	// A reload: the new configuration's app finds the same hub while the
	// old one still holds it.
	reloaded := newTestApp(t)
	h3, err := reloaded.useHub(name, HubSettings{}, explicit, memoryOpener)
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
	if _, err := a.useHub(name, HubSettings{}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	other := json.RawMessage(`{"store":"redis","address":"redis://127.0.0.1:1/0"}`)
	_, err := a.useHub(name, HubSettings{}, other, func() (StoreOpener, error) {
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
	old := newAppWithoutCleanup()
	h1, err := old.useHub(name, HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.RegisterChannel(t.Context(), "kept", false, 0); err != nil {
		t.Fatal(err)
	}
	reloaded := newTestApp(t)
	h2, err := reloaded.useHub(name, HubSettings{MessagesPerChannel: 3}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if h2 != h1 {
		t.Fatal("the reloaded configuration got a new hub")
	}
	if got := h2.Config().MessagesPerChannel; got != hub.DefaultMessagesPerChannel {
		t.Errorf("messages_per_channel once the reload is provisioned = %d, want the running configuration's %d until it starts", got, hub.DefaultMessagesPerChannel)
	}
	if err := reloaded.Start(); err != nil {
		t.Fatal(err)
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := h2.Config().MessagesPerChannel; got != 3 {
		t.Errorf("messages_per_channel after reload = %d, want the new configuration's 3", got)
	}
	if err := h2.RegisterChannel(t.Context(), "kept", false, 0); !errors.Is(err, hub.ErrChannelExists) {
		t.Errorf("registering the channel again after reload: %v, want %v", err, hub.ErrChannelExists)
	}
}

// A configuration's settings reach a hub that a running configuration uses
// only when it starts, and a configuration that Caddy stops because
// another of its apps failed to start gives the hub back the running
// configuration's settings; one stopped after its successor started leaves
// the successor's.
func TestAppHubSettingsTakeEffectAtStart(t *testing.T) {
	name := t.Name()
	// Each configuration sets an engine setting and one the HTTP layer
	// keeps beside the hub, in step.
	settings := func(n int) HubSettings { return HubSettings{MessagesPerChannel: n, IPv6PrefixPerIP: 40 + n} }
	perChannel := func(h *pooledHub) int {
		if prefix := h.http.IPv6PrefixPerIP(); prefix != 40+h.Config().MessagesPerChannel {
			t.Errorf("ipv6_prefix_per_ip %d beside messages_per_channel %d: the settings of two configurations", prefix, h.Config().MessagesPerChannel)
		}
		return h.Config().MessagesPerChannel
	}

	running := newAppWithoutCleanup()
	h, err := running.useHub(name, settings(5), nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}

	// Provisioned, then thrown away before it starts.
	refused := newAppWithoutCleanup()
	if _, err := refused.useHub(name, settings(1), nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	if got := perChannel(h); got != 5 {
		t.Errorf("messages_per_channel while a reload is provisioned = %d, want the running 5", got)
	}
	if err := refused.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := perChannel(h); got != 5 {
		t.Errorf("messages_per_channel after a reload failed to provision = %d, want 5", got)
	}

	// Started, then stopped because another app of it failed to start.
	aborted := newAppWithoutCleanup()
	if _, err := aborted.useHub(name, settings(2), nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	if err := aborted.Start(); err != nil {
		t.Fatal(err)
	}
	if got := perChannel(h); got != 2 {
		t.Errorf("messages_per_channel once a reload started = %d, want its 2", got)
	}
	if err := aborted.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := aborted.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := perChannel(h); got != 5 {
		t.Errorf("messages_per_channel after a reload failed to start = %d, want the running 5", got)
	}

	// A reload that succeeds: the old configuration stops after the new
	// one started, and leaves the new settings.
	next := newTestApp(t)
	if _, err := next.useHub(name, settings(3), nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	if err := running.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := running.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := perChannel(h); got != 3 {
		t.Errorf("messages_per_channel after a reload = %d, want the new 3", got)
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
