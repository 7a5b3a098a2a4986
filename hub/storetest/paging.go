package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// pagedReplySize leaves pagedBudget bytes of messages to a read of the
// paging tests' channels: the reply's framing, then each channel's.
const pagedBudget = 200

func pagedReplySize(channels ...string) int {
	n := 512 + pagedBudget
	for _, c := range channels {
		n += 6*len(c) + 8
	}
	return n
}

// A read with more than max_reply_size to return pages: each reply holds
// the oldest messages newer than since in id order across its channels, as
// many as fit and at least one, with last_id the id of its last message; a
// reader that goes on with since=last_id gets every message of its
// channels exactly once, session channels included, and nothing of others.
func (s *suite) testReadPaged(t *testing.T) {
	readChannels := []string{"pa", "pb", "ps"}
	h := s.newHub(t, hub.Config{MaxReplySize: pagedReplySize(readChannels...), HTTPTimeout: longHold})
	mustRegister(t, h, "pa", false, 100)
	mustRegister(t, h, "pb", false, 100)
	mustRegister(t, h, "ps", true, 100)
	mustRegister(t, h, "pc", false, 100) // published to, not read
	mustClient(t, h, "reader")

	// 60 messages spread at random over the four channels, some of them
	// longer than the others.
	rng := rand.New(rand.NewPCG(1, 2))
	published := map[string][]hub.Message{}
	for i := range 60 {
		c := []string{"pa", "pb", "ps", "pc"}[rng.IntN(4)]
		content := fmt.Sprintf("m%02d", i) + strings.Repeat("x", rng.IntN(40))
		published[c] = append(published[c], mustPublish(t, h, c, content))
	}

	got := map[string][]hub.Message{}
	since, pages := int64(0), 0
	for {
		r, err := readNow(h, hub.ReadRequest{Channels: strings.Join(readChannels, "|"), ClientID: "reader", HasClientID: true, Since: since})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if !r.HasMessages() {
			break
		}
		pages++
		size, n, newest := 0, 0, int64(0)
		for _, c := range r.Channels {
			if !slices.Contains(readChannels, c.ID) {
				t.Fatalf("page %d holds channel %q", pages, c.ID)
			}
			for _, m := range c.Messages {
				if m.ID <= since || m.ID > r.LastID {
					t.Fatalf("page %d since %d: message %d outside (since, last_id %d]", pages, since, m.ID, r.LastID)
				}
				size += len(m.JSON) + 1
				n++
				newest = max(newest, m.ID)
			}
			got[c.ID] = append(got[c.ID], c.Messages...)
		}
		if size > pagedBudget && n > 1 {
			t.Fatalf("page %d: %d bytes of messages in %d messages, over the budget of %d", pages, size, n, pagedBudget)
		}
		// A page that leaves messages out ends at its last message; the
		// last page ends at the hub's newest id, which may be a message of
		// a channel the read does not name.
		rest := publishedAfter(published, readChannels, newest)
		if newest != r.LastID && rest > 0 {
			t.Fatalf("page %d: last_id %d, but its last message is %d and %d messages follow", pages, r.LastID, newest, rest)
		}
		// Cut says whether messages of the read's channels follow: a
		// stream relies on it to look again before it waits.
		if r.Cut != (rest > 0) {
			t.Fatalf("page %d: Cut %v, with %d messages of its channels after it", pages, r.Cut, rest)
		}
		since = r.LastID
	}
	if pages < 5 {
		t.Fatalf("%d pages: the test's budget did not page", pages)
	}
	for _, c := range readChannels {
		if !slices.Equal(ids(got[c]), ids(published[c])) {
			t.Fatalf("channel %s: got %v, want %v (each exactly once, in order)", c, ids(got[c]), ids(published[c]))
		}
	}
}

// publishedAfter counts the messages of channels with ids above id.
func publishedAfter(published map[string][]hub.Message, channels []string, id int64) int {
	n := 0
	for _, c := range channels {
		for _, m := range published[c] {
			if m.ID > id {
				n++
			}
		}
	}
	return n
}

// A message larger than a whole page still comes through, alone, and the
// reader goes on past it.
func (s *suite) testReadPagedLargeMessage(t *testing.T) {
	h := s.newHub(t, hub.Config{MaxReplySize: pagedReplySize("big"), HTTPTimeout: longHold})
	mustRegister(t, h, "big", false, 10)
	large := mustPublish(t, h, "big", strings.Repeat("L", 3*pagedBudget))
	small := mustPublish(t, h, "big", "small")
	r := mustRead(t, h, hub.ReadRequest{Channels: "big"})
	if got, _ := messagesOf(r, "big"); !slices.Equal(ids(got), []int64{large.ID}) || r.LastID != large.ID {
		t.Fatalf("first page: %v, last_id %d; want only %d", ids(got), r.LastID, large.ID)
	}
	r = mustRead(t, h, hub.ReadRequest{Channels: "big", Since: r.LastID})
	if got, _ := messagesOf(r, "big"); !slices.Equal(ids(got), []int64{small.ID}) || r.LastID != small.ID {
		t.Fatalf("second page: %v, last_id %d; want %d", ids(got), r.LastID, small.ID)
	}
}

// readNow reads without holding: a read with nothing to return is answered
// empty at once.
func readNow(h *hub.Hub, req hub.ReadRequest) (hub.Reply, error) {
	stop := make(chan struct{})
	close(stop)
	return h.Read(context.Background(), req, stop)
}
