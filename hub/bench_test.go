package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// BenchmarkPublish measures one fan-out: a publish to a channel with n reads
// held on it, until every reader has the message. Readers loop with
// since=last_id as clients do, so between publishes they are held again (or,
// if still on their way, find the message in their first look). ns/op is
// the whole round; publish-ns/op is the Publish call alone.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 1, 100, 10000} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) { benchmarkPublish(b, n) })
	}
}

func benchmarkPublish(b *testing.B, readers int) {
	ctx := context.Background()
	h := hub.NewMemory(hub.Config{HTTPTimeout: time.Hour})
	defer h.Close()
	if err := h.RegisterChannel(ctx, "bench", false, 16); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var delivered sync.WaitGroup // one Done per message received
	var running sync.WaitGroup
	for range readers {
		running.Go(func() {
			req := hub.ReadRequest{Channels: "bench"}
			for {
				r, err := h.Read(ctx, req, stop)
				if err != nil {
					b.Error(err)
					return
				}
				if r.Reason == hub.ReleasedStopped {
					return
				}
				for _, c := range r.Channels {
					for range c.Messages {
						delivered.Done()
					}
				}
				req.Since = r.LastID
			}
		})
	}
	for h.Held() < readers {
		time.Sleep(time.Millisecond)
	}

	var publishing time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		delivered.Add(readers)
		start := time.Now()
		if _, err := h.Publish(ctx, "bench", "a message of some thirty bytes"); err != nil {
			b.Fatal(err)
		}
		publishing += time.Since(start)
		delivered.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(publishing.Nanoseconds())/float64(b.N), "publish-ns/op")
	if readers > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(readers), "ns/delivery")
	}
	close(stop)
	running.Wait()
}

// BenchmarkRead measures reads that do not wait: a catch-up read that finds
// 5 messages, and a read that finds none, so registers to be woken, looks
// again, and is released at once by a closed stop channel (the cost of
// holding a read, without the wait).
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	h := hub.NewMemory(hub.Config{})
	defer h.Close()
	for _, c := range []string{"full", "empty"} {
		if err := h.RegisterChannel(ctx, c, false, 5); err != nil {
			b.Fatal(err)
		}
	}
	for range 5 {
		if _, err := h.Publish(ctx, "full", "a message of some thirty bytes"); err != nil {
			b.Fatal(err)
		}
	}
	stopped := make(chan struct{})
	close(stopped)
	cases := []struct {
		name     string
		channels string
		want     hub.ReleaseReason
	}{
		{"messages=5", "full", hub.ReleasedMessages},
		{"messages=0", "empty", hub.ReleasedStopped},
	}
	for _, tc := range cases {
		req := hub.ReadRequest{Channels: tc.channels}
		check := func(b *testing.B, r hub.Reply, err error) {
			if err != nil || r.Reason != tc.want {
				b.Fatalf("read: %v, released by %d", err, r.Reason)
			}
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := h.Read(ctx, req, stopped)
				check(b, r, err)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := h.Read(ctx, req, stopped)
					check(b, r, err)
				}
			})
		})
	}
}
