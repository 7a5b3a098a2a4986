package hub_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
)

// BenchmarkMemoryHubSize measures what the memory store keeps per thing a
// client can make the hub hold: a channel, a session client, a client
// recorded on a channel it read, a remembered idempotency key, and a
// retained message (beyond its
// content's bytes). These are the terms of the worst-case memory formula
// of docs/security.md. Each reports live heap bytes per item, measured after a GC, with
// ids of 16 bytes and messages of 32 bytes of content.
func BenchmarkMemoryHubSize(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	// measure reports the live heap that fill adds, per item, after setup.
	measure := func(b *testing.B, unit string, setup, fill func(h *hub.Hub)) {
		var total float64
		for b.Loop() {
			h := hub.NewMemory(hub.Config{MaxChannels: -1, MaxClients: -1, MaxRetainedMessages: n, HTTPTimeout: time.Hour})
			setup(h)
			before := liveHeap()
			fill(h)
			total += float64(liveHeap()-before) / n
			runtime.KeepAlive(h)
			h.Close()
		}
		b.ReportMetric(total/float64(b.N), unit)
	}
	none := func(*hub.Hub) {}
	b.Run("channel", func(b *testing.B) {
		measure(b, "B/channel", none, func(h *hub.Hub) {
			for i := range n {
				mustOK(b, h.RegisterChannel(ctx, fmt.Sprintf("channel-%08d", i), false, 100))
			}
		})
	})
	b.Run("client", func(b *testing.B) {
		measure(b, "B/client", none, func(h *hub.Hub) {
			for i := range n {
				mustOK(b, h.RegisterClient(ctx, fmt.Sprintf("client--%08d", i)))
			}
		})
	})
	b.Run("reader", func(b *testing.B) {
		stop := make(chan struct{})
		close(stop) // answer at once rather than hold
		clients := func(h *hub.Hub) {
			mustOK(b, h.RegisterChannel(ctx, "shared", false, 100))
			for i := range n {
				mustOK(b, h.RegisterClient(ctx, fmt.Sprintf("client--%08d", i)))
			}
		}
		measure(b, "B/reader", clients, func(h *hub.Hub) {
			for i := range n {
				_, err := h.Read(ctx, hub.ReadRequest{Channels: "shared", ClientID: fmt.Sprintf("client--%08d", i), HasClientID: true}, stop)
				mustOK(b, err)
			}
		})
	})
	b.Run("idempotency-key", func(b *testing.B) {
		// Keys of 16 bytes, on a channel that keeps one message, so that
		// what grows is the keys, not the messages.
		channel := func(h *hub.Hub) { mustOK(b, h.RegisterChannel(ctx, "keyed", false, 1)) }
		measure(b, "B/key", channel, func(h *hub.Hub) {
			for i := range n {
				_, err := h.PublishOnce(ctx, "keyed", "x", fmt.Sprintf("key-----%08d", i))
				mustOK(b, err)
			}
		})
	})
	b.Run("message", func(b *testing.B) {
		channel := func(h *hub.Hub) { mustOK(b, h.RegisterChannel(ctx, "retains", false, n)) }
		measure(b, "B/message", channel, func(h *hub.Hub) {
			for range n {
				_, err := h.Publish(ctx, "retains", "thirty-two bytes of content.....")
				mustOK(b, err)
			}
		})
	})
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mustOK(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
