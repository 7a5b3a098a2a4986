package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
)

// node is one process's hub on a shared Redis, as a Caddy node has it.
func node(t *testing.T, addr string) *hub.Hub {
	t.Helper()
	return nodeWith(t, rueidis.ClientOption{InitAddress: []string{addr}})
}

func nodeWith(t *testing.T, co rueidis.ClientOption) *hub.Hub {
	t.Helper()
	h, err := hub.New("shared", hub.Config{HTTPTimeout: 20 * time.Second}, func(so hub.StoreOptions) (hub.Store, error) {
		return Open(Options{Client: co, Timeout: time.Second}, so)
	})
	if err != nil {
		t.Fatalf("starting a node: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// waitHeld waits until h holds n reads. The hub has no event for that, so
// this polls its counter.
func waitHeld(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Held() != n {
		if time.Now().After(deadline) {
			t.Fatalf("held reads: %d, want %d", h.Held(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type readResult struct {
	reply hub.Reply
	err   error
}

func readAsync(h *hub.Hub, req hub.ReadRequest) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		r, err := h.Read(context.Background(), req, nil)
		ch <- readResult{r, err}
	}()
	return ch
}

func contents(r hub.Reply, channel string) []string {
	var out []string
	for _, c := range r.Channels {
		if c.ID == channel {
			for _, m := range c.Messages {
				out = append(out, m.Content())
			}
		}
	}
	return out
}

func TestPublishOnOneNodeReleasesReadHeldOnAnother(t *testing.T) {
	srv := startRedis(t)
	a, b := node(t, srv.Addr()), node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "news", false, 0); err != nil {
		t.Fatal(err)
	}
	held := readAsync(b, hub.ReadRequest{Channels: "news"})
	waitHeld(t, b, 1)
	m, err := a.Publish(ctx, "news", "hello from a")
	if err != nil {
		t.Fatal(err)
	}
	r := <-held
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := contents(r.reply, "news"); len(got) != 1 || got[0] != "hello from a" || r.reply.LastID != m.ID {
		t.Fatalf("held read on b got %v last_id %d, want [hello from a] %d", got, r.reply.LastID, m.ID)
	}
}

// A publish on one node racing a read being registered on another is
// delivered, once, whichever comes first: the read's snapshot or the
// publish.
func TestPublishRacingReadOnAnotherNodeIsNeverLost(t *testing.T) {
	srv := startRedis(t)
	a, b := node(t, srv.Addr()), node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "race", false, 1000); err != nil {
		t.Fatal(err)
	}
	var since int64
	for i := range 300 {
		held := readAsync(b, hub.ReadRequest{Channels: "race", Since: since})
		want := fmt.Sprint("m", i)
		m, err := a.Publish(ctx, "race", want)
		if err != nil {
			t.Fatal(err)
		}
		var r readResult
		select {
		case r = <-held:
		case <-time.After(15 * time.Second):
			t.Fatalf("round %d: publish %d never reached the read held on the other node", i, m.ID)
		}
		if r.err != nil {
			t.Fatalf("round %d: %v", i, r.err)
		}
		if got := contents(r.reply, "race"); len(got) != 1 || got[0] != want {
			t.Fatalf("round %d: got %v, want [%s] (released: %v)", i, got, want, r.reply.Reason)
		}
		since = r.reply.LastID
	}
}

func TestDeleteOnOneNodeReleasesReadHeldOnAnother(t *testing.T) {
	srv := startRedis(t)
	a, b := node(t, srv.Addr()), node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterChannel(ctx, "doomed", false, 0); err != nil {
		t.Fatal(err)
	}
	held := readAsync(b, hub.ReadRequest{Channels: "doomed"})
	waitHeld(t, b, 1)
	if removed, err := a.DeleteChannel(ctx, "doomed"); err != nil || !removed {
		t.Fatalf("delete: %v %v", removed, err)
	}
	r := <-held
	if r.err != nil || r.reply.Reason != hub.ReleasedDeleted {
		t.Fatalf("held read: reason %v err %v, want released by the delete", r.reply.Reason, r.err)
	}
}

func TestSessionsAndIDsAreShared(t *testing.T) {
	srv := startRedis(t)
	a, b := node(t, srv.Addr()), node(t, srv.Addr())
	ctx := context.Background()
	if err := a.RegisterClient(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterClient(ctx, "alice"); !errors.Is(err, hub.ErrClientExists) {
		t.Fatalf("registering alice again on b: %v, want ErrClientExists", err)
	}
	if err := b.RegisterChannel(ctx, "private", true, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterChannel(ctx, "private", true, 0); !errors.Is(err, hub.ErrChannelExists) {
		t.Fatalf("registering private again on a: %v, want ErrChannelExists", err)
	}
	// Ids from both nodes, interleaved and concurrent, are unique.
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for _, h := range []*hub.Hub{a, b, a, b} {
		wg.Go(func() {
			for range 50 {
				m, err := h.Publish(ctx, "private", "x")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[m.ID] {
					t.Errorf("id %d handed out twice", m.ID)
				}
				seen[m.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r, err := b.Read(ctx, hub.ReadRequest{Channels: "private", ClientID: "alice", HasClientID: true}, nil)
	if err != nil {
		t.Fatalf("alice, registered on a, reading on b: %v", err)
	}
	if got := len(contents(r, "private")); got != 100 {
		t.Fatalf("read %d messages, want the channel's 100", got)
	}
	if _, err := b.Read(ctx, hub.ReadRequest{Channels: "private"}, nil); !errors.Is(err, hub.ErrNoValidChannels) {
		t.Fatalf("anonymous read of a session channel: %v, want ErrNoValidChannels", err)
	}
}
