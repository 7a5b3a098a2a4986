package comet

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/simple-comet/caddy-comet/hub"
)

func ptr[T any](v T) *T { return &v }

func TestHubSettingsMerge(t *testing.T) {
	full := HubSettings{
		HTTPTimeout:            caddy.Duration(10 * time.Second),
		SessionTimeout:         caddy.Duration(20 * time.Second),
		InactiveChannelTimeout: ptr(caddy.Duration(30 * time.Second)),
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
		a, b HubSettings
		want HubSettings
	}{
		{"neither sets anything", HubSettings{}, HubSettings{}, HubSettings{}},
		{"first sets everything", full, HubSettings{}, full},
		{"second sets everything", HubSettings{}, full, full},
		{"both set the same", full, full, full},
		{
			"each sets different settings",
			HubSettings{HTTPTimeout: caddy.Duration(time.Second), MaxHeldConnections: ptr(0)},
			HubSettings{SessionTimeout: caddy.Duration(time.Minute), MessagesPerChannel: 9},
			HubSettings{HTTPTimeout: caddy.Duration(time.Second), SessionTimeout: caddy.Duration(time.Minute), MessagesPerChannel: 9, MaxHeldConnections: ptr(0)},
		},
		// 0 is a setting for these two (expiry off, no limit), not "unset".
		{"inactive_channel_timeout 0 on one route", HubSettings{}, HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(0))},
			HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(0))}},
		{"max_held_connections 0 on one route", HubSettings{MaxHeldConnections: ptr(0)}, HubSettings{},
			HubSettings{MaxHeldConnections: ptr(0)}},
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
		a, b    HubSettings
		values  string
	}{
		{"http_timeout", HubSettings{HTTPTimeout: caddy.Duration(10 * time.Second)}, HubSettings{HTTPTimeout: caddy.Duration(20 * time.Second)}, "10s and 20s"},
		{"session_timeout", HubSettings{SessionTimeout: caddy.Duration(time.Minute)}, HubSettings{SessionTimeout: caddy.Duration(time.Second)}, "1m0s and 1s"},
		{"inactive_channel_timeout", HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(0))},
			HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(90 * time.Second))}, "0s and 1m30s"},
		{"messages_per_channel", HubSettings{MessagesPerChannel: 100}, HubSettings{MessagesPerChannel: 10}, "100 and 10"},
		{"max_message_size", HubSettings{MaxMessageSize: 1 << 10}, HubSettings{MaxMessageSize: 1 << 20}, "1024 and 1048576"},
		{"max_channels_per_read", HubSettings{MaxChannelsPerRead: 64}, HubSettings{MaxChannelsPerRead: 1}, "64 and 1"},
		{"max_held_connections", HubSettings{MaxHeldConnections: ptr(0)}, HubSettings{MaxHeldConnections: ptr(5)}, "0 and 5"},
		{"max_held_per_ip", HubSettings{MaxHeldPerIP: ptr(0)}, HubSettings{MaxHeldPerIP: ptr(5)}, "0 and 5"},
		{"ipv6_prefix_per_ip", HubSettings{IPv6PrefixPerIP: 64}, HubSettings{IPv6PrefixPerIP: 56}, "64 and 56"},
		{"max_channels", HubSettings{MaxChannels: ptr(0)}, HubSettings{MaxChannels: ptr(5)}, "0 and 5"},
		{"max_clients", HubSettings{MaxClients: ptr(10)}, HubSettings{MaxClients: ptr(0)}, "10 and 0"},
		{"max_retained_messages", HubSettings{MaxRetainedMessages: 10}, HubSettings{MaxRetainedMessages: 20}, "10 and 20"},
		{"max_reply_size", HubSettings{MaxReplySize: 1 << 20}, HubSettings{MaxReplySize: 2 << 20}, "1048576 and 2097152"},
		{"idempotency_window", HubSettings{IdempotencyWindow: caddy.Duration(time.Minute)}, HubSettings{IdempotencyWindow: caddy.Duration(time.Hour)}, "1m0s and 1h0m0s"},
		{"max_idempotency_keys", HubSettings{MaxIdempotencyKeys: 10}, HubSettings{MaxIdempotencyKeys: 20}, "10 and 20"},
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
	if got := (HubSettings{}).config(); got != (hub.Config{}) {
		t.Errorf("unset settings give %+v, want the zero Config (hub defaults)", got)
	}
	got := (HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(0)), MaxHeldConnections: ptr(0)}).config()
	if got.InactiveChannelTimeout >= 0 {
		t.Errorf("inactive_channel_timeout 0 gives %v, want a negative value (expiry off)", got.InactiveChannelTimeout)
	}
	if n := got.Normalize(); n.InactiveChannelTimeout >= 0 {
		t.Errorf("inactive_channel_timeout 0 normalizes to %v, want expiry off", n.InactiveChannelTimeout)
	}
	got = (HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(time.Minute)), MaxHeldConnections: ptr(3), MaxHeldPerIP: ptr(2)}).config()
	if got.InactiveChannelTimeout != time.Minute || got.MaxHeldConnections != 3 || got.MaxHeldPerPeer != 2 {
		t.Errorf("got %+v", got)
	}
}

// Hub sizes: unset takes the hub's default, 0 is no limit.
func TestHubSettingsLimits(t *testing.T) {
	cfg := (HubSettings{}).config().Normalize()
	if cfg.MaxChannels != hub.DefaultMaxChannels || cfg.MaxClients != hub.DefaultMaxClients || cfg.MaxRetainedMessages != hub.DefaultMaxRetainedMessages {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg = (HubSettings{MaxChannels: ptr(0), MaxClients: ptr(0)}).config().Normalize()
	if cfg.MaxChannels >= 0 || cfg.MaxClients >= 0 {
		t.Errorf("0 gives %d and %d, want no limit (negative)", cfg.MaxChannels, cfg.MaxClients)
	}
	cfg = (HubSettings{MaxChannels: ptr(3), MaxClients: ptr(4), MaxRetainedMessages: 5, MessagesPerChannel: 5}).config().Normalize()
	if cfg.MaxChannels != 3 || cfg.MaxClients != 4 || cfg.MaxRetainedMessages != 5 {
		t.Errorf("set: %+v", cfg)
	}
}

// messages_per_channel may not exceed max_retained_messages, set or by
// default, on one route or across the routes of a hub.
func TestHubSettingsCheck(t *testing.T) {
	for _, tt := range []struct {
		s    HubSettings
		want string
	}{
		{HubSettings{}, ""},
		{HubSettings{MessagesPerChannel: 1000}, ""},
		{HubSettings{MessagesPerChannel: 1001}, "messages_per_channel 1001 is over max_retained_messages 1000"},
		{HubSettings{MaxRetainedMessages: 50}, "messages_per_channel 100 is over max_retained_messages 50"},
		{HubSettings{MaxRetainedMessages: 50, MessagesPerChannel: 50}, ""},
		// max_reply_size must hold one message of max_message_size in a
		// read of max_channels_per_read channels with the longest ids.
		{HubSettings{MaxReplySize: int64(hub.MinReplySize(hub.DefaultMaxMessageSize, hub.DefaultMaxChannelsPerRead))}, ""},
		{HubSettings{MaxReplySize: int64(hub.MinReplySize(hub.DefaultMaxMessageSize, hub.DefaultMaxChannelsPerRead)) - 1},
			"max_reply_size 492608 cannot hold one message of max_message_size 65536 in a read of max_channels_per_read 64: it must be at least 492609"},
		{HubSettings{MaxMessageSize: 1 << 20}, "max_reply_size 1048576 cannot hold one message of max_message_size 1048576 in a read of max_channels_per_read 64: it must be at least 6390849"},
		{HubSettings{MaxMessageSize: 1 << 20, MaxReplySize: 8 << 20}, ""},
	} {
		err := tt.s.check()
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("check(%+v) = %v, want %q", tt.s, err, tt.want)
		}
	}
	merged, err := (HubSettings{MaxRetainedMessages: 50, MessagesPerChannel: 10}).merge(HubSettings{MessagesPerChannel: 10})
	if err != nil || merged.check() != nil {
		t.Errorf("merged settings: %v, %v", err, merged.check())
	}
}

// Every hub setting reaches the hub: set alone, each changes its own field
// of hub.Config, and no two settings change the same one. A setting tagged
// hub:"-" is the HTTP layer's (pooledHub keeps it) and changes none.
func TestHubSettingsConfigEveryField(t *testing.T) {
	seen := map[string]string{}
	fields := reflect.TypeFor[HubSettings]()
	for i := range fields.NumField() {
		if fields.Field(i).Tag.Get("hub") == "-" {
			var s HubSettings
			reflect.ValueOf(&s).Elem().Field(i).SetInt(7)
			if s.config() != (hub.Config{}) {
				t.Errorf("%s, tagged hub:\"-\", changes hub.Config: %+v", fields.Field(i).Name, s.config())
			}
			continue
		}
		var s HubSettings
		v := reflect.ValueOf(&s).Elem().Field(i)
		if v.Kind() == reflect.Pointer {
			v.Set(reflect.New(v.Type().Elem()))
			v = v.Elem()
		}
		v.SetInt(7)
		got := reflect.ValueOf(s.config())
		var changed []string
		for j := range got.NumField() {
			if !got.Field(j).IsZero() {
				changed = append(changed, got.Type().Field(j).Name)
			}
		}
		name := fields.Field(i).Name
		if len(changed) != 1 {
			t.Fatalf("%s changes %v of hub.Config, want one field", name, changed)
		}
		if other, dup := seen[changed[0]]; dup {
			t.Errorf("%s and %s both set hub.Config.%s", other, name, changed[0])
		}
		seen[changed[0]] = name
		if n := reflect.ValueOf(s.config()).FieldByName(changed[0]).Int(); n != 7 {
			t.Errorf("%s 7 gives hub.Config.%s %d", name, changed[0], n)
		}
	}
}

// JSON can say what the Caddyfile parser refuses: Provision refuses it,
// naming the setting by its JSON name.
func TestHubSettingsValidate(t *testing.T) {
	for _, tt := range []struct {
		s    HubSettings
		want string
	}{
		{HubSettings{}, ""},
		{HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(0)), MaxChannels: ptr(0), MaxReplySize: maxReplySize}, ""},
		{HubSettings{HTTPTimeout: -1}, "http_timeout must not be negative"},
		{HubSettings{InactiveChannelTimeout: ptr(caddy.Duration(-time.Second))}, "inactive_channel_timeout must not be negative"},
		{HubSettings{MaxMessageSize: -1}, "max_message_size must not be negative"},
		{HubSettings{MaxHeldPerIP: ptr(-1)}, "max_held_per_ip must not be negative"},
		{HubSettings{MaxIdempotencyKeys: -1}, "max_idempotency_keys must not be negative"},
		{HubSettings{MaxReplySize: maxReplySize + 1}, "max_reply_size must be at most 2147483647"},
		{HubSettings{IPv6PrefixPerIP: 128}, ""},
		{HubSettings{IPv6PrefixPerIP: 129}, "ipv6_prefix_per_ip must be a prefix length from 1 to 128, not 129"},
		{HubSettings{IPv6PrefixPerIP: -1}, "ipv6_prefix_per_ip must not be negative"},
	} {
		err := tt.s.validate()
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("validate(%+v) = %v, want %q", tt.s, err, tt.want)
		}
	}
}
