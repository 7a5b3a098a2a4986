package redisstore

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// The benchmarks put the memory store and the Redis store side by side,
// through a real hub, on the same load:
//
//	go test -run '^$' -bench . -benchtime 3s ./hub/redisstore/
//
// Redis runs locally (loopback), so the figures show the cost of the store's
// round trip and scripts, not of a network.

type benchHub struct {
	name string
	// a publishes; b reads. For redis they are two nodes on one Redis, so
	// delivery crosses nodes through pub/sub.
	a, b *hub.Hub
}

func benchHubs(b *testing.B) []benchHub {
	b.Helper()
	mem := hub.NewMemory(hub.Config{HTTPTimeout: time.Minute, MessagesPerChannel: 100})
	b.Cleanup(func() { _ = mem.Close() })
	srv := redistest.Start(b)
	open := func(o Options) *hub.Hub {
		h, err := hub.New("bench", hub.Config{HTTPTimeout: time.Minute, MessagesPerChannel: 100}, func(so hub.StoreOptions) (hub.Store, error) {
			return Open(o, so)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() })
		return h
	}
	plain := Options{Client: rueidis.ClientOption{InitAddress: []string{srv.Addr()}}}
	// The same with durable publishes, on a primary with one replica.
	primary := redistest.Start(b)
	redistest.Replica(b, primary)
	durable := Options{Client: rueidis.ClientOption{InitAddress: []string{primary.Addr()}}, MinReplicas: 1}
	return []benchHub{{"memory", mem, mem}, {"redis", open(plain), open(plain)}, {"redis-min_replicas_1", open(durable), open(durable)}}
}

// BenchmarkPublishLatency: one publisher, one publish at a time; the
// median and 99th percentile of a publish's time, which is what a
// publisher waits for its acknowledgement.
func BenchmarkPublishLatency(b *testing.B) {
	for _, bh := range benchHubs(b) {
		b.Run(bh.name, func(b *testing.B) {
			ctx := context.Background()
			_ = bh.a.RegisterChannel(ctx, "latency", false, 0)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := bh.a.Publish(ctx, "latency", `{"text":"a message of about sixty bytes, like a chat line"}`); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkPublish: concurrent publishes spread over 16 channels.
func BenchmarkPublish(b *testing.B) {
	for _, bh := range benchHubs(b) {
		b.Run(bh.name, func(b *testing.B) {
			ctx := context.Background()
			for i := range 16 {
				_ = bh.a.RegisterChannel(ctx, fmt.Sprint("pub", i), false, 0)
			}
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch := fmt.Sprint("pub", n.Add(1)%16)
					if _, err := bh.a.Publish(ctx, ch, `{"text":"a message of about sixty bytes, like a chat line"}`); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
		})
	}
}

// BenchmarkRead: concurrent catch-up reads (since=0) of 4 channels that
// retain 10 messages each.
func BenchmarkRead(b *testing.B) {
	for _, bh := range benchHubs(b) {
		b.Run(bh.name, func(b *testing.B) {
			ctx := context.Background()
			for i := range 4 {
				ch := fmt.Sprint("read", i)
				_ = bh.a.RegisterChannel(ctx, ch, false, 10)
				for j := range 20 {
					if _, err := bh.a.Publish(ctx, ch, fmt.Sprint("message ", j)); err != nil {
						b.Fatal(err)
					}
				}
			}
			req := hub.ReadRequest{Channels: "read0|read1|read2|read3"}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := bh.b.Read(ctx, req, nil)
					if err != nil || len(r.Channels) != 4 || len(r.Channels[0].Messages) != 10 {
						b.Errorf("read: %v %+v", err, r)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// BenchmarkDelivery: the time from the start of a publish on one node to the
// return of a read held on another (the same hub for memory), one at a time,
// reported as p50 and p99.
func BenchmarkDelivery(b *testing.B) {
	for _, bh := range benchHubs(b) {
		b.Run(bh.name, func(b *testing.B) {
			ctx := context.Background()
			_ = bh.a.RegisterChannel(ctx, "lat", false, 0)
			first, err := bh.a.Publish(ctx, "lat", "start")
			if err != nil {
				b.Fatal(err)
			}
			since := first.ID
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				done := make(chan time.Time, 1)
				var got hub.Reply
				go func() {
					r, err := bh.b.Read(ctx, hub.ReadRequest{Channels: "lat", Since: since}, nil)
					if err != nil {
						b.Error(err)
					}
					got = r
					done <- time.Now()
				}()
				b.StopTimer()
				for bh.b.Held() != 1 {
					time.Sleep(20 * time.Microsecond)
				}
				b.StartTimer()
				start := time.Now()
				m, err := bh.a.Publish(ctx, "lat", "ping")
				if err != nil {
					b.Fatal(err)
				}
				end := <-done
				if !got.HasMessages() || got.LastID != m.ID {
					b.Fatalf("delivered %+v, want message %d", got, m.ID)
				}
				lat = append(lat, end.Sub(start))
				since = m.ID
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
