package hub_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

func TestConfigNormalize(t *testing.T) {
	defaults := hub.Config{
		HTTPTimeout:            hub.DefaultHTTPTimeout,
		SessionTimeout:         hub.DefaultSessionTimeout,
		InactiveChannelTimeout: hub.DefaultInactiveChannelTimeout,
		MessagesPerChannel:     hub.DefaultMessagesPerChannel,
		MaxMessageSize:         hub.DefaultMaxMessageSize,
		MaxChannelsPerRead:     hub.DefaultMaxChannelsPerRead,
		MaxChannels:            hub.DefaultMaxChannels,
		MaxClients:             hub.DefaultMaxClients,
		MaxRetainedMessages:    hub.DefaultMaxRetainedMessages,
		MaxReplySize:           hub.DefaultMaxReplySize,
		IdempotencyWindow:      hub.DefaultIdempotencyWindow,
		MaxIdempotencyKeys:     hub.DefaultMaxIdempotencyKeys,
	}
	set := hub.Config{
		HTTPTimeout:            time.Second,
		SessionTimeout:         2 * time.Second,
		InactiveChannelTimeout: 3 * time.Second,
		MessagesPerChannel:     4,
		MaxMessageSize:         5,
		MaxChannelsPerRead:     6,
		MaxHeldConnections:     7,
		MaxChannels:            8,
		MaxClients:             9,
		MaxRetainedMessages:    10,
		MaxHeldPerPeer:         11,
		MaxReplySize:           12,
		IdempotencyWindow:      13 * time.Second,
		MaxIdempotencyKeys:     14,
	}
	offExpiry := defaults
	unlimited := defaults
	unlimited.MaxChannels, unlimited.MaxClients = -1, -1
	offExpiry.InactiveChannelTimeout = -1
	cases := []struct {
		name string
		in   hub.Config
		want hub.Config
	}{
		{"zero takes the defaults", hub.Config{}, defaults},
		{"negatives take the defaults", hub.Config{HTTPTimeout: -1, SessionTimeout: -1, MessagesPerChannel: -1, MaxMessageSize: -1,
			MaxChannelsPerRead: -1, MaxRetainedMessages: -1, MaxReplySize: -1, IdempotencyWindow: -1, MaxIdempotencyKeys: -1}, defaults},
		// Negative hub sizes are how the API says "no limit".
		{"negative hub sizes are no limit", hub.Config{MaxChannels: -1, MaxClients: -1}, unlimited},
		{"set values stay", set, set},
		// A negative inactive_channel_timeout is how the API says "never".
		{"negative channel expiry is off", hub.Config{InactiveChannelTimeout: -1}, offExpiry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.Normalize(); got != tc.want {
				t.Fatalf("Normalize(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestNewReportsStoreErrors(t *testing.T) {
	cause := errors.New("connection refused")
	h, err := hub.New("default", hub.Config{}, func(hub.StoreOptions) (hub.Store, error) { return nil, cause })
	if h != nil || !errors.Is(err, cause) || !strings.Contains(err.Error(), "opening store") {
		t.Fatalf("New with a failing store: %v, %v; want an error wrapping the cause", h, err)
	}
}

// The store is told the hub's name, and the hub's notifications come back
// through the options it was given.
func TestNewPassesStoreOptions(t *testing.T) {
	var got hub.StoreOptions
	h, err := hub.New("chat", hub.Config{}, func(o hub.StoreOptions) (hub.Store, error) {
		got = o
		return hub.NewMemoryStore(o), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got.Hub != "chat" || got.Notify == nil {
		t.Fatalf("store options %+v, want hub chat and a notify function", got)
	}
}

// SetConfig applies to the next call without reopening the store.
func TestSetConfig(t *testing.T) {
	ctx := context.Background()
	h := hub.NewMemory(hub.Config{MaxMessageSize: 4, MessagesPerChannel: 2})
	defer h.Close()
	if err := h.RegisterChannel(ctx, "a", false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "a", "12345"); !errors.Is(err, hub.ErrMessageTooLarge) {
		t.Fatalf("5 bytes over a 4-byte limit: %v", err)
	}
	h.SetConfig(hub.Config{MaxMessageSize: 8, MessagesPerChannel: 3, MaxChannelsPerRead: 1})
	if got := h.Config(); got.MaxMessageSize != 8 || got.HTTPTimeout != hub.DefaultHTTPTimeout {
		t.Fatalf("config after SetConfig: %+v, want it normalized", got)
	}
	if _, err := h.Publish(ctx, "a", "12345"); err != nil {
		t.Fatalf("5 bytes under the new 8-byte limit: %v", err)
	}
	if err := h.RegisterChannel(ctx, "b", false, 0); err != nil {
		t.Fatal(err)
	}
	st, _ := h.Status(ctx)
	if st.Channels[0].MaxMessages != 2 || st.Channels[1].MaxMessages != 3 {
		t.Fatalf("max_messages %d and %d, want 2 (registered before) and 3 (after)", st.Channels[0].MaxMessages, st.Channels[1].MaxMessages)
	}
	if _, err := h.Read(ctx, hub.ReadRequest{Channels: "a|b"}, nil); !errors.Is(err, hub.ErrTooManyChannels) {
		t.Fatalf("two channels over the new limit of one: %v", err)
	}
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	h := hub.NewMemory(hub.Config{})
	defer h.Close()
	if err := h.RegisterChannel(ctx, "a", false, 0); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := h.Publish(ctx, "a", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Publish(ctx, "nope", "x"); err == nil {
		t.Fatal("publish to an unknown channel succeeded")
	}
	if n := h.Stats().Published.Load(); n != 3 {
		t.Fatalf("published %d, want 3 (refused publishes do not count)", n)
	}
	// Every store call is timed: one registration and four publishes.
	if count, sum, buckets := h.Stats().StoreLatency.Snapshot(); count != 5 || sum < 0 || len(buckets) == 0 {
		t.Fatalf("store latency: count %d sum %v buckets %d, want 5 calls", count, sum, len(buckets))
	}
}
