package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// The idempotency tests (SPEC section 10): a publish retried with its key
// publishes nothing and gets the first publish's id, so a publisher that
// lost a reply can retry without duplicating the message.

// mustPublishOnce publishes with an idempotency key.
func mustPublishOnce(t *testing.T, h *hub.Hub, channel, content, key string) hub.Published {
	t.Helper()
	p, err := h.PublishOnce(context.Background(), channel, content, key)
	if err != nil {
		t.Fatalf("publishing to %q with key %q: %v", channel, key, err)
	}
	return p
}

// retained reads the contents of every retained message of a channel.
func retained(t *testing.T, h *hub.Hub, channel string) []string {
	t.Helper()
	var got []string
	for _, c := range mustRead(t, h, hub.ReadRequest{Channels: channel}).Channels {
		got = append(got, contents(c.Messages)...)
	}
	return got
}

// A key is remembered per channel; a retry gets the first id and publishes
// nothing, a new key or no key publishes, and the same key on another
// channel is another publish.
func (s *suite) testIdempotentPublish(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 10)
	mustRegister(t, h, "b", false, 10)

	first := mustPublishOnce(t, h, "a", "one", "key-1")
	if first.Replayed || first.ID == 0 {
		t.Fatalf("first publish: %+v", first)
	}
	retry := mustPublishOnce(t, h, "a", "one", "key-1")
	if !retry.Replayed || retry.ID != first.ID {
		t.Errorf("retry: id %d replayed %v, want id %d replayed", retry.ID, retry.Replayed, first.ID)
	}
	// The content of a retry is not compared: the key alone names the
	// publish.
	if other := mustPublishOnce(t, h, "a", "changed", "key-1"); !other.Replayed || other.ID != first.ID {
		t.Errorf("retry with other content: %+v, want a replay of %d", other, first.ID)
	}
	second := mustPublishOnce(t, h, "a", "two", "key-2")
	if second.Replayed || second.ID <= first.ID {
		t.Errorf("a new key: %+v, want a new message after %d", second, first.ID)
	}
	elsewhere := mustPublishOnce(t, h, "b", "one", "key-1")
	if elsewhere.Replayed || elsewhere.ID <= second.ID {
		t.Errorf("the same key on another channel: %+v, want a new message", elsewhere)
	}
	unkeyed1 := mustPublish(t, h, "a", "three")
	unkeyed2 := mustPublish(t, h, "a", "three")
	if unkeyed1.ID == unkeyed2.ID {
		t.Error("two publishes without a key got one id")
	}
	if got, want := strings.Join(retained(t, h, "a"), ","), "one,two,three,three"; got != want {
		t.Errorf("channel a holds %s, want %s", got, want)
	}

	_, err := h.PublishOnce(context.Background(), "nope", "x", "key-1")
	wantErr(t, "a keyed publish to an unknown channel", err, hub.ErrNoChannel, "")
}

// Keys follow the id rules: 1 to 256 bytes of UTF-8 without control
// characters.
func (s *suite) testIdempotencyKeyRules(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 10)
	longest := strings.Repeat("k", hub.MaxIDLength)
	p := mustPublishOnce(t, h, "a", "x", longest)
	if again := mustPublishOnce(t, h, "a", "x", longest); !again.Replayed || again.ID != p.ID {
		t.Errorf("a 256-byte key was not remembered: %+v", again)
	}
	for _, tc := range []struct{ key, detail string }{
		{longest + "k", "longer than 256 bytes"},
		{"new\nline", "control character"},
		{"\xff", "UTF-8"},
	} {
		_, err := h.PublishOnce(context.Background(), "a", "x", tc.key)
		wantErr(t, "key "+tc.key[:min(len(tc.key), 10)], err, hub.ErrInvalidIdempotencyKey, tc.detail)
	}
	if got := retained(t, h, "a"); len(got) != 1 {
		t.Errorf("refused keys published: %q", got)
	}
}

// Retries racing each other (from any number of nodes on a shared store)
// publish once: one of them publishes, all get its id.
func (s *suite) testIdempotentPublishConcurrent(t *testing.T) {
	const tries = 30
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 100)
	results := make([]hub.Published, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() { results[i] = mustPublishOnce(t, h, "a", "once", "the-key") })
	}
	wg.Wait()
	published := 0
	for _, p := range results {
		if !p.Replayed {
			published++
		}
		if p.ID != results[0].ID {
			t.Fatalf("ids %d and %d for one key", p.ID, results[0].ID)
		}
	}
	if published != 1 {
		t.Errorf("%d of %d racing retries published, want 1", published, tries)
	}
	if got := retained(t, h, "a"); len(got) != 1 {
		t.Errorf("channel holds %d messages, want 1", len(got))
	}
}

// A key is remembered for idempotency_window: retries within it are
// replays, and once it has passed the key publishes again.
func (s *suite) testIdempotencyWindow(t *testing.T) {
	window := s.opts.Expiry / 2
	h := s.newHub(t, hub.Config{IdempotencyWindow: window})
	mustRegister(t, h, "a", false, 100)
	start := time.Now()
	first := mustPublishOnce(t, h, "a", "x", "k")
	retries := 0
	for {
		p := mustPublishOnce(t, h, "a", "x", "k")
		age := time.Since(start) // at least the key's age when p was made
		if !p.Replayed {
			if age < window-clockSlack {
				t.Fatalf("published again %v after the first publish, within the window of %v", age, window)
			}
			if p.ID <= first.ID {
				t.Fatalf("new publish got id %d, first was %d", p.ID, first.ID)
			}
			break
		}
		retries++
		if age > patience {
			t.Fatalf("key still remembered after %v, window %v", age, window)
		}
		time.Sleep(10 * time.Millisecond) // pacing the retries, not waiting for an event
	}
	if retries == 0 {
		t.Fatal("no retry came within the window")
	}
	if got := retained(t, h, "a"); len(got) != 2 {
		t.Errorf("channel holds %d messages, want 2 (the first and the one after the window)", len(got))
	}
}

// A channel remembers at most max_idempotency_keys keys, forgetting the
// oldest first, in the order they were used even when many are used within
// one tick of a clock; a replay does not count as a new key.
func (s *suite) testMaxIdempotencyKeys(t *testing.T) {
	const limit = 5
	h := s.newHub(t, hub.Config{MaxIdempotencyKeys: limit})
	mustRegister(t, h, "a", false, 100)
	key := func(i int) string { return fmt.Sprintf("k%d", i) } // k10 sorts before k2
	ids := map[string]int64{}
	for i := 1; i <= 2*limit; i++ {
		ids[key(i)] = mustPublishOnce(t, h, "a", key(i), key(i)).ID
	}
	// The newest limit keys, k6 to k10, are remembered; retries of them
	// change nothing.
	for i := limit + 1; i <= 2*limit; i++ {
		if p := mustPublishOnce(t, h, "a", key(i), key(i)); !p.Replayed || p.ID != ids[key(i)] {
			t.Errorf("retry of %s (one of the newest %d keys): %+v, want a replay of %d", key(i), limit, p, ids[key(i)])
		}
	}
	if p := mustPublishOnce(t, h, "a", key(limit), key(limit)); p.Replayed {
		t.Errorf("%s, the newest of the keys over the limit, was still remembered: %+v", key(limit), p)
	}
	// k5 is new again and pushed out the oldest, k6, and nothing else.
	if p := mustPublishOnce(t, h, "a", key(limit+1), key(limit+1)); p.Replayed {
		t.Errorf("%s still remembered after %s took its place: %+v", key(limit+1), key(limit), p)
	}
	// and k6, new again, pushed out k7.
	for i := limit + 3; i <= 2*limit; i++ {
		if p := mustPublishOnce(t, h, "a", key(i), key(i)); !p.Replayed {
			t.Errorf("%s was forgotten before older keys: %+v", key(i), p)
		}
	}
}

// Deleting a channel forgets its keys with its messages: a channel
// registered again under the id does not answer with ids of the old one.
func (s *suite) testIdempotencyKeysGoWithChannel(t *testing.T) {
	h := s.newHub(t, hub.Config{})
	mustRegister(t, h, "a", false, 10)
	old := mustPublishOnce(t, h, "a", "x", "k")
	if _, err := h.DeleteChannel(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, h, "a", false, 10)
	if p := mustPublishOnce(t, h, "a", "x", "k"); p.Replayed || p.ID == old.ID {
		t.Errorf("a key of the deleted channel answered: %+v", p)
	}
}
