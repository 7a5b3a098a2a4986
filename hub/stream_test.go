package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// A stream is admitted once, as one held read, and its reads are never
// refused for the limits it was admitted under, however many there are.
func TestStreamCountsAsOneHeldReadForItsLife(t *testing.T) {
	h := hub.NewMemory(hub.Config{MaxHeldConnections: 1, MaxHeldPerPeer: 1})
	defer h.Close()
	ctx := context.Background()
	if err := h.RegisterChannel(ctx, "s", false, 0); err != nil {
		t.Fatal(err)
	}

	s, err := h.OpenStream("10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Held() != 1 || h.HeldBy("10.0.0.1") != 1 {
		t.Fatalf("an open stream: held %d, by its peer %d; want 1 and 1", h.Held(), h.HeldBy("10.0.0.1"))
	}
	if _, err := h.OpenStream("10.0.0.2"); !errors.Is(err, hub.ErrTooManyHeld) {
		t.Fatalf("a second stream over max_held_connections 1: %v, want ErrTooManyHeld", err)
	}
	if _, err := h.Read(ctx, hub.ReadRequest{Channels: "s"}, nil); !errors.Is(err, hub.ErrTooManyHeld) {
		t.Fatalf("a long poll while the stream holds the only slot: %v, want ErrTooManyHeld", err)
	}

	// The stream's own reads, one after another, hold without being
	// refused: the stream holds the slot they would count in.
	m1, err := h.Publish(ctx, "s", "one")
	if err != nil {
		t.Fatal(err)
	}
	var since int64
	for _, want := range []int64{m1.ID, 0} {
		req := hub.ReadRequest{Channels: "s", Since: since, Stream: s, Peer: "10.0.0.1", Hold: 50 * time.Millisecond}
		reply, err := h.Read(ctx, req, nil)
		if err != nil {
			t.Fatalf("a stream's read: %v", err)
		}
		switch {
		case want != 0 && (reply.Reason != hub.ReleasedMessages || reply.LastID != want):
			t.Fatalf("a stream's catch-up: %+v, want message %d", reply, want)
		case want == 0 && reply.Reason != hub.ReleasedTimeout:
			t.Fatalf("a stream's idle read: released by %v, want its Hold to pass", reply.Reason)
		}
		since = reply.LastID
	}
	if h.Held() != 1 {
		t.Fatalf("after the stream's reads: held %d, want the stream's 1", h.Held())
	}

	s.Close()
	s.Close() // a second Close does not uncount twice
	if h.Held() != 0 || h.HeldBy("10.0.0.1") != 0 {
		t.Fatalf("a closed stream: held %d, by its peer %d; want 0 and 0", h.Held(), h.HeldBy("10.0.0.1"))
	}
	s2, err := h.OpenStream("10.0.0.1")
	if err != nil {
		t.Fatalf("a stream after the first closed: %v", err)
	}
	defer s2.Close()
	if _, err := h.OpenStream("10.0.0.1"); err == nil {
		t.Fatal("a second stream from one peer over max_held_per_ip 1 was admitted")
	}
}

// A read with a negative Hold answers at once: what a read finds, or
// nothing with the newest id, never waiting; a stream's first event.
func TestReadWithNegativeHoldAnswersAtOnce(t *testing.T) {
	h := hub.NewMemory(hub.Config{HTTPTimeout: time.Hour})
	defer h.Close()
	ctx := context.Background()
	for _, c := range []string{"a", "b"} {
		if err := h.RegisterChannel(ctx, c, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	m, err := h.Publish(ctx, "b", "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := h.Read(ctx, hub.ReadRequest{Channels: "a", Hold: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Reason != hub.ReleasedTimeout || reply.HasMessages() || reply.LastID != m.ID {
		t.Fatalf("nothing to catch up on: %+v, want no messages and last_id %d", reply, m.ID)
	}
	reply, err = h.Read(ctx, hub.ReadRequest{Channels: "a|b", Hold: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Reason != hub.ReleasedMessages || reply.LastID != m.ID {
		t.Fatalf("a catch-up: %+v, want message %d", reply, m.ID)
	}
	if h.Held() != 0 {
		t.Fatalf("held %d after reads that never wait", h.Held())
	}
}

// storeCalls counts the hub's store calls so far (every publish, and every
// look, shared or not, is one), by its store latency histogram.
func storeCalls(h *hub.Hub) uint64 {
	n, _, _ := h.Stats().StoreLatency.Snapshot()
	return n
}

// Streams keep their place: between reads they stay registered, so a
// publish while they write an event reaches them, and a stream whose look
// was whole goes straight back to waiting: one store read per event,
// shared by all the streams it released. In a synctest bubble, so that "every stream is waiting
// again" is something the test can wait for.
func TestStreamsKeepTheirPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hub.NewMemory(hub.Config{})
		defer h.Close()
		ctx := context.Background()
		if err := h.RegisterChannel(ctx, "s", false, 0); err != nil {
			t.Fatal(err)
		}
		first, err := h.Publish(ctx, "s", "first")
		if err != nil {
			t.Fatal(err)
		}
		const streams = 50
		replies := make(chan hub.Reply, streams)
		proceed := make(chan struct{})
		for range streams {
			s, err := h.OpenStream("")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				defer s.Close()
				req := hub.ReadRequest{Channels: "s", Since: first.ID, Stream: s, Hold: time.Hour}
				var reply hub.Reply
				for {
					if err := h.ReadInto(ctx, &req, nil, &reply); err != nil {
						t.Error(err)
						return
					}
					if reply.Reason != hub.ReleasedMessages {
						return
					}
					replies <- reply
					<-proceed // writing its event, for as long as the test says
					req.Since = reply.LastID
				}
			}()
		}
		synctest.Wait() // every stream waits for a publish

		before := storeCalls(h)
		second, err := h.Publish(ctx, "s", "second")
		if err != nil {
			t.Fatal(err)
		}
		for range streams {
			if r := <-replies; r.LastID != second.ID {
				t.Fatalf("a stream got last_id %d, want %d", r.LastID, second.ID)
			}
		}
		synctest.Wait() // every stream is writing its event
		// Published while every stream is between reads: it must not be
		// missed.
		third, err := h.Publish(ctx, "s", "third")
		if err != nil {
			t.Fatal(err)
		}
		close(proceed)
		for range streams {
			if r := <-replies; r.LastID != third.ID || len(r.Channels) != 1 || len(r.Channels[0].Messages) != 1 {
				t.Fatalf("a stream's read after its event: %+v, want the message published meanwhile, %d, alone", r, third.ID)
			}
		}
		synctest.Wait() // every stream waits again
		// Two publishes, and two store reads, one per event: their looks
		// were whole, so the streams do not look on before they wait; the
		// third publish, which came while they wrote, woke them.
		if got := storeCalls(h) - before; got != 4 {
			t.Fatalf("%d streams took %d store calls for two events, want 4 (2 publishes, 2 reads)", streams, got)
		}
		h.Close() // ends the streams' reads
	})
}

// A stream whose reply was cut at max_reply_size looks again before it
// waits: it gets the rest at once, page by page, without a publish to wake
// it.
func TestStreamPagesOnWithoutAPublish(t *testing.T) {
	h := hub.NewMemory(hub.Config{MaxReplySize: 600, HTTPTimeout: time.Hour})
	defer h.Close()
	ctx := context.Background()
	if err := h.RegisterChannel(ctx, "s", false, 0); err != nil {
		t.Fatal(err)
	}
	first, err := h.Publish(ctx, "s", "first")
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.OpenStream("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A first read that finds nothing and times out: the stream is
	// registered from then on.
	req := hub.ReadRequest{Channels: "s", Since: first.ID, Stream: s, Hold: time.Millisecond}
	var r hub.Reply
	if err := h.ReadInto(ctx, &req, nil, &r); err != nil || r.Reason != hub.ReleasedTimeout {
		t.Fatalf("the first read: %v, released by %v; want a timeout", err, r.Reason)
	}
	var want []int64
	for i := range 12 {
		m, err := h.Publish(ctx, "s", fmt.Sprint(i, strings.Repeat("x", 100)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	var got []int64
	pages := 0
	for {
		req.Since, req.Hold = r.LastID, time.Hour
		deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := h.ReadInto(deadline, &req, nil, &r)
		cancel()
		if err != nil || r.Reason != hub.ReleasedMessages {
			t.Fatalf("page %d: %v, released by %v; want it at once", pages+1, err, r.Reason)
		}
		pages++
		for _, c := range r.Channels {
			for _, m := range c.Messages {
				got = append(got, m.ID)
			}
		}
		if !r.Cut {
			break
		}
	}
	if pages < 2 || !slices.Equal(got, want) {
		t.Fatalf("the stream got %v in %d pages, want %v in more than one", got, pages, want)
	}
}
