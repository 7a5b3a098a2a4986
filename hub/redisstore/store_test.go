package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

var exp = hub.Expiry{SessionTimeout: time.Minute, InactiveChannelTimeout: time.Minute}

func mustPublish(t *testing.T, s *Store, channel, content string) hub.Message {
	t.Helper()
	enc, err := hub.EncodeContent(content)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Publish(context.Background(), hub.Publication{Channel: channel, Encoded: enc}, time.Now(), exp)
	if err != nil {
		t.Fatalf("publishing to %q: %v", channel, err)
	}
	return m.Message
}

// The message JSON the script stores is the one the publisher returns, byte
// for byte, and ids are above the clock's tick and below 2^53.
func TestPublishedJSONMatchesStored(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "a", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	before := hub.ClockID(time.Now())
	content := "<script>\u2028\"x\" & ü 😀"
	m := mustPublish(t, s, "a", content)
	if m.ID < before || m.ID >= 1<<53 {
		t.Fatalf("id %d: want >= clock tick %d and < 2^53", m.ID, before)
	}
	res, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"a"}}, exp)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Channels) != 1 || len(res.Channels[0].Messages) != 1 {
		t.Fatalf("read %+v", res)
	}
	got := res.Channels[0].Messages[0]
	if got.ID != m.ID || string(got.JSON) != string(m.JSON) {
		t.Fatalf("stored %d %s, published %d %s", got.ID, got.JSON, m.ID, m.JSON)
	}
	if got.Content() != content {
		t.Fatalf("content %q, want %q", got.Content(), content)
	}
	if res.LastID != m.ID {
		t.Fatalf("last id %d, want %d", res.LastID, m.ID)
	}
}

// Ids keep increasing when the clock is behind the counter (another node's
// clock ahead, or this one stepped back).
func TestIDsIncreaseWhenClockGoesBack(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: "a", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	enc, _ := hub.EncodeContent("x")
	now := time.Now()
	first, err := s.Publish(ctx, hub.Publication{Channel: "a", Encoded: enc}, now.Add(time.Hour), exp)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Publish(ctx, hub.Publication{Channel: "a", Encoded: enc}, now, exp)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID+1 {
		t.Fatalf("ids %d then %d: want the second one more than the first", first.ID, second.ID)
	}
}

func TestHubsWithDifferentNamesAreSeparate(t *testing.T) {
	srv := startRedis(t)
	a := open(t, srv.Addr(), "a", hub.StoreOptions{}, nil)
	b := open(t, srv.Addr(), "b", hub.StoreOptions{}, nil)
	ctx := context.Background()
	if err := a.CreateChannel(ctx, hub.ChannelSpec{ID: "x", MaxMessages: 1}, exp); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateChannel(ctx, hub.ChannelSpec{ID: "x", MaxMessages: 1}, exp); err != nil {
		t.Fatalf("channel x of hub b: %v", err)
	}
	mustPublish(t, a, "x", "only in a")
	res, err := b.Read(ctx, hub.ReadQuery{Channels: []string{"x"}}, exp)
	if err != nil {
		t.Fatal(err)
	}
	if res.HasMessages() || res.LastID != 0 {
		t.Fatalf("hub b sees hub a's message: %+v", res)
	}
}

// Channel and client ids may hold anything but control characters, so
// key-like text in them must stay inside its own key.
func TestIDsThatLookLikeKeys(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	ids := []string{"x", "ch:x", "msgs:x", "}:id", "{other}", "clients", strings.Repeat("é", hub.MaxIDLength/2)}
	for _, id := range ids {
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: id, MaxMessages: 5}, exp); err != nil {
			t.Fatalf("creating %q: %v", id, err)
		}
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: id}, exp); err != nil {
			t.Fatalf("registering %q: %v", id, err)
		}
	}
	for _, id := range ids {
		mustPublish(t, s, id, "to "+id)
	}
	for _, id := range ids {
		res, err := s.Read(ctx, hub.ReadQuery{Channels: []string{id}, ClientID: id}, exp)
		if err != nil {
			t.Fatalf("reading %q: %v", id, err)
		}
		if len(res.Channels) != 1 || len(res.Channels[0].Messages) != 1 || res.Channels[0].Messages[0].Content() != "to "+id {
			t.Fatalf("reading %q: %+v", id, res)
		}
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Channels) != len(ids) || len(st.Clients) != len(ids) || st.Counts.Channels != len(ids) || st.Counts.Clients != len(ids) {
		t.Fatalf("status: %+v", st)
	}
	for _, c := range st.Channels {
		if len(c.Clients) != 1 || c.Clients[0] != c.ID {
			t.Fatalf("channel %q clients %v, want just %q", c.ID, c.Clients, c.ID)
		}
	}
}

func TestUnknownChannelAndClient(t *testing.T) {
	srv := startRedis(t)
	s := open(t, srv.Addr(), "default", hub.StoreOptions{}, nil)
	ctx := context.Background()
	enc, _ := hub.EncodeContent("x")
	if _, err := s.Publish(ctx, hub.Publication{Channel: "nope", Encoded: enc}, time.Now(), exp); !errors.Is(err, hub.ErrNoChannel) {
		t.Fatalf("publish to unknown channel: %v, want ErrNoChannel", err)
	}
	if _, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"nope"}, ClientID: "who"}, exp); !errors.Is(err, hub.ErrUnregisteredClient) {
		t.Fatalf("read with unknown client: %v, want ErrUnregisteredClient", err)
	}
	if _, err := s.Read(ctx, hub.ReadQuery{Channels: []string{"nope"}}, exp); !errors.Is(err, hub.ErrNoValidChannels) {
		t.Fatalf("read of unknown channel: %v, want ErrNoValidChannels", err)
	}
}
