package storetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// testStress runs many readers, each looping reads with since=last_id over 1
// to 3 channels, against concurrent publishers, and checks that every reader
// receives every message of its channels exactly once, in increasing id
// order. The reads are never answered by a timeout: a lost wake-up leaves a
// reader waiting until the deadline, and fails the test.
func (s *suite) testStress(t *testing.T) {
	o := s.opts
	h := s.newHub(t, hub.Config{HTTPTimeout: 2 * o.Deadline})
	ctx, cancel := context.WithTimeout(context.Background(), o.Deadline)
	defer cancel()

	channels := make([]string, o.Channels)
	perChannel := make([]int, o.Channels)
	for p := range o.Publishers {
		for k := range o.MessagesPerPublisher {
			perChannel[(p+k)%o.Channels]++
		}
	}
	for i := range channels {
		channels[i] = fmt.Sprintf("stress-%d", i)
		// Retention holds every message, so that a slow reader misses
		// nothing legitimately.
		mustRegister(t, h, channels[i], false, perChannel[i])
	}

	readers := make([]*stressReader, o.Readers)
	var rwg sync.WaitGroup
	for i := range readers {
		n := min(1+i%3, o.Channels)
		r := &stressReader{got: make(map[string][]hub.Message, n)}
		for j := range n {
			r.channels = append(r.channels, channels[(i+j*2)%o.Channels])
		}
		for _, c := range r.channels {
			r.want += perChannel[slices.Index(channels, c)]
		}
		readers[i] = r
		rwg.Go(func() { r.run(ctx, h) })
	}
	// Publishing starts once every reader is held, so the wake-up path is
	// what delivers most messages.
	waitHeld(t, h, o.Readers)

	published := make([][]hub.Message, o.Publishers)
	var pwg sync.WaitGroup
	for p := range o.Publishers {
		pwg.Go(func() {
			for k := range o.MessagesPerPublisher {
				c := channels[(p+k)%o.Channels]
				m, err := h.Publish(ctx, c, fmt.Sprintf("p%d-m%d", p, k))
				if err != nil {
					t.Errorf("publisher %d: publishing to %q: %v", p, c, err)
					return
				}
				published[p] = append(published[p], m)
			}
		})
	}
	pwg.Wait()
	rwg.Wait()
	if t.Failed() {
		return
	}

	// What was published, by channel, in id order.
	byChannel := make(map[string][]hub.Message, o.Channels)
	seen := make(map[int64]bool)
	for p, ms := range published {
		for k, m := range ms {
			if seen[m.ID] {
				t.Fatalf("id %d given to two messages", m.ID)
			}
			seen[m.ID] = true
			c := channels[(p+k)%o.Channels]
			byChannel[c] = append(byChannel[c], m)
		}
	}
	for _, ms := range byChannel {
		slices.SortFunc(ms, func(a, b hub.Message) int { return cmp.Compare(a.ID, b.ID) })
	}

	for i, r := range readers {
		if r.err != nil {
			t.Errorf("reader %d on %q: %v", i, r.channels, r.err)
			continue
		}
		for _, c := range r.channels {
			if err := sameMessages(r.got[c], byChannel[c]); err != nil {
				t.Errorf("reader %d, channel %q: %v", i, c, err)
			}
		}
	}
}

type stressReader struct {
	channels []string
	want     int // messages to receive over all its channels
	got      map[string][]hub.Message
	err      error
}

func (r *stressReader) run(ctx context.Context, h *hub.Hub) {
	req := hub.ReadRequest{Channels: strings.Join(r.channels, "|")}
	received := 0
	for received < r.want {
		reply, err := h.Read(ctx, req, nil)
		if err != nil {
			r.err = fmt.Errorf("read since %d: %w", req.Since, err)
			return
		}
		if reply.Reason != hub.ReleasedMessages {
			r.err = fmt.Errorf("read since %d answered by %s after %d of %d messages (a lost wake-up?)",
				req.Since, reply.Reason, received, r.want)
			return
		}
		if reply.Since != req.Since || reply.LastID < req.Since {
			r.err = fmt.Errorf("read since %d: reply since %d last_id %d", req.Since, reply.Since, reply.LastID)
			return
		}
		for _, c := range reply.Channels {
			prev := req.Since
			if got := r.got[c.ID]; len(got) > 0 {
				prev = max(prev, got[len(got)-1].ID)
			}
			for _, m := range c.Messages {
				if m.ID <= prev || m.ID > reply.LastID {
					r.err = fmt.Errorf("channel %q: id %d after %d, since %d, last_id %d: repeated, reordered or beyond last_id",
						c.ID, m.ID, prev, req.Since, reply.LastID)
					return
				}
				prev = m.ID
				received++
			}
			r.got[c.ID] = append(r.got[c.ID], c.Messages...)
		}
		req.Since = reply.LastID
	}
}

// sameMessages compares what a reader got with what was published, in order.
func sameMessages(got, want []hub.Message) error {
	for i := range min(len(got), len(want)) {
		if got[i].ID != want[i].ID {
			return fmt.Errorf("message %d: id %d, want %d", i, got[i].ID, want[i].ID)
		}
		if !bytes.Equal(got[i].JSON, want[i].JSON) {
			return fmt.Errorf("message %d: %s, want %s", i, got[i].JSON, want[i].JSON)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	return nil
}

// testPublishDuringHeldRead races a publish against a read that is being
// registered, many times: the read must get the message, either in its first
// look or when woken, never by its deadline.
func (s *suite) testPublishDuringHeldRead(t *testing.T) {
	h := s.newHub(t, hub.Config{HTTPTimeout: longHold})
	mustRegister(t, h, "race", false, 1)
	mustRegister(t, h, "quiet", false, 1)
	last := mustPublish(t, h, "race", "start").ID
	for i := range s.opts.RaceIterations {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		// Half the reads also name a channel nobody publishes to, so the
		// waiter is registered on several channels.
		req := hub.ReadRequest{Channels: "race", Since: last}
		if i%2 == 1 {
			req.Channels = "quiet|race"
		}
		start := make(chan struct{})
		var published hub.Message
		var pubErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			published, pubErr = h.Publish(ctx, "race", fmt.Sprintf("m%d", i))
		})
		p := make(pending, 1)
		go func() {
			<-start
			r, err := h.Read(ctx, req, nil)
			p <- readOutcome{r, err}
		}()
		close(start)
		wg.Wait()
		if pubErr != nil {
			t.Fatalf("iteration %d: publishing: %v", i, pubErr)
		}
		o := <-p
		cancel()
		if o.err != nil {
			t.Fatalf("iteration %d: read: %v", i, o.err)
		}
		got, _ := messagesOf(o.reply, "race")
		if o.reply.Reason != hub.ReleasedMessages || len(got) != 1 || got[0].ID != published.ID {
			t.Fatalf("iteration %d: read since %d answered by %s with %v, want [%d]: the publish was lost",
				i, last, o.reply.Reason, ids(got), published.ID)
		}
		last = published.ID
	}
}
