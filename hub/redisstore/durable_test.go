package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
	"github.com/simple-comet/caddy-comet/hub/storetest"
)

// durableOptions opens stores on addr whose publishes wait for one replica.
func durableOptions(addr string) Options {
	return Options{
		Client:         rueidis.ClientOption{InitAddress: []string{addr}},
		Timeout:        3 * time.Second,
		MinReplicas:    1,
		ReplicaTimeout: time.Second,
	}
}

// The behavioural suite every store passes holds for durable publishes:
// a primary with one replica, each publish waiting for it.
func TestStoreSuiteDurable(t *testing.T) {
	primary := redistest.Start(t)
	redistest.Replica(t, primary)
	storetest.Run(t, func(t *testing.T, so hub.StoreOptions) hub.Store {
		t.Helper()
		s, err := Open(durableOptions(primary.Addr()), so)
		if err != nil {
			t.Fatalf("opening redis store: %v", err)
		}
		return s
	})
}

// durableHub opens a hub on a durable store on addr and closes it when the
// test ends.
func durableHub(t *testing.T, addr string) *hub.Hub {
	t.Helper()
	h, err := hub.New("durable", hub.Config{HTTPTimeout: time.Minute},
		func(so hub.StoreOptions) (hub.Store, error) { return Open(durableOptions(addr), so) })
	if err != nil {
		t.Fatalf("opening hub: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// durableNews starts a primary with a replica and a durable hub on it, in
// which channel news has one message: since is its id, a reader's last id.
func durableNews(t *testing.T) (primary, replica *redistest.Server, h *hub.Hub, since int64) {
	t.Helper()
	primary = redistest.Start(t)
	replica = redistest.Replica(t, primary)
	h = durableHub(t, primary.Addr())
	ctx := context.Background()
	if err := h.RegisterChannel(ctx, "news", false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "news", "acknowledged"); err != nil {
		t.Fatalf("a publish its replica acknowledges: %v", err)
	}
	return primary, replica, h, readNow(t, h, "news", 0).LastID
}

// readNow reads channel since an id, without waiting.
func readNow(t *testing.T, h *hub.Hub, channel string, since int64) hub.Reply {
	t.Helper()
	r, err := h.Read(context.Background(), hub.ReadRequest{Channels: channel, Since: since, Hold: -1}, nil)
	if err != nil {
		t.Fatalf("reading %s since %d: %v", channel, since, err)
	}
	return r
}

func messageIDs(r hub.Reply) []int64 {
	var ids []int64
	for _, c := range r.Channels {
		for _, m := range c.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// A publish that no replica acknowledges in time fails as 'Store
// unavailable' and readers do not see it; its retry with the same
// idempotency key, once the replica is back, publishes it once, and
// readers then get it once.
func TestDurablePublishWaitsForItsReplica(t *testing.T) {
	_, replica, h, since := durableNews(t)
	ctx := context.Background()
	if r := readNow(t, h, "news", 0); len(messageIDs(r)) != 1 || messageIDs(r)[0] != since {
		t.Fatalf("after an acknowledged publish readers get %v, last id %d; want it alone", messageIDs(r), since)
	}

	replica.Freeze()
	_, err := h.PublishOnce(ctx, "news", "unreplicated", "key-1")
	if code := hub.AsError(err); code == nil || code.Code != hub.CodeUnavailable || !errors.Is(err, errNotReplicated) {
		t.Fatalf("a publish no replica acknowledges: %v, want 'Store unavailable' (%v)", err, errNotReplicated)
	}
	if r := readNow(t, h, "news", since); len(messageIDs(r)) != 0 || r.LastID != since {
		t.Fatalf("readers see an unacknowledged publish: messages %v, last id %d (want none, %d)", messageIDs(r), r.LastID, since)
	}
	replica.Thaw()

	retried, err := h.PublishOnce(ctx, "news", "unreplicated", "key-1")
	if err != nil {
		t.Fatalf("the retry once the replica is back: %v", err)
	}
	if !retried.Replayed {
		t.Fatalf("the retry published again (id %d) instead of acknowledging the first", retried.ID)
	}
	r := readNow(t, h, "news", since)
	if ids := messageIDs(r); len(ids) != 1 || ids[0] != retried.ID {
		t.Fatalf("after the retry readers get %v, want the message once, id %d", ids, retried.ID)
	}
}

// Failover: the replica is promoted without a publish the primary took
// after it (so that publish was never acknowledged, nor seen by a reader),
// and the primary dies. A reader that goes on with its last id misses
// nothing and gets nothing twice, even from a node whose clock is hours
// behind: ids count on from the promoted replica's counter, which is at or
// above every id a reader was given.
func TestDurableFailoverNeverSkipsAReader(t *testing.T) {
	primary, replica, h, since := durableNews(t)
	ctx := context.Background()

	if _, err := replica.Run("REPLICAOF", "NO", "ONE"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "news", "lost"); err == nil {
		t.Fatal("a publish no replica acknowledged succeeded")
	}
	if r := readNow(t, h, "news", since); r.LastID != since || len(messageIDs(r)) != 0 {
		t.Fatalf("a reader was given %v, last id %d, of an unacknowledged publish (its last id was %d)", messageIDs(r), r.LastID, since)
	}
	primary.Kill()
	redistest.Replica(t, replica)

	// A node whose clock is six hours behind publishes on the new primary.
	store, err := Open(durableOptions(replica.Addr()), hub.StoreOptions{Hub: "durable"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	behind := time.Now().Add(-6 * time.Hour)
	p, err := store.Publish(ctx, hub.Publication{Channel: "news", Encoded: []byte(`"after"`)}, behind, hub.Expiry{})
	if err != nil {
		t.Fatalf("publishing on the promoted replica: %v", err)
	}
	if p.ID <= since {
		t.Fatalf("the first id after failover, %d, is not above the reader's last id %d", p.ID, since)
	}
	res, err := store.Read(ctx, hub.ReadQuery{Channels: []string{"news"}, Since: since}, hub.Expiry{})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, c := range res.Channels {
		for _, m := range c.Messages {
			got = append(got, m.ID)
		}
	}
	if len(got) != 1 || got[0] != p.ID {
		t.Fatalf("the reader going on from %d gets %v, want exactly the new message %d", since, got, p.ID)
	}
}

// A publish that failed because its replica did not answer in time, but
// that the replica then got, is delivered once the next publish is
// acknowledged: once, and in id order.
func TestDurableUnacknowledgedSurvivorIsDeliveredInOrder(t *testing.T) {
	_, replica, h, since := durableNews(t)
	ctx := context.Background()
	replica.Freeze()
	if _, err := h.Publish(ctx, "news", "late"); err == nil {
		t.Fatal("a publish no replica acknowledged succeeded")
	}
	replica.Thaw()
	next, err := h.Publish(ctx, "news", "next")
	if err != nil {
		t.Fatal(err)
	}
	r := readNow(t, h, "news", since)
	var contents []string
	for _, c := range r.Channels {
		for _, m := range c.Messages {
			contents = append(contents, string(m.JSON))
		}
	}
	if ids := messageIDs(r); len(ids) != 2 || ids[0] >= ids[1] || ids[1] != next.ID || r.LastID != next.ID {
		t.Fatalf("after the next publish the reader gets %v (%q), last id %d; want the late message, then the next one (%d)", ids, contents, r.LastID, next.ID)
	}
}
