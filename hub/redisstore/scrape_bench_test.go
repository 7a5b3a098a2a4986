package redisstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// BenchmarkScrape measures what a metrics scrape asks of Redis on a hub of
// 20,000 channels and 20,000 clients: Counts, which metrics use, and, for
// comparison, a status listing (capped at hub.StatusListLimit):
//
//	go test -run '^$' -bench Scrape -benchtime 200x ./hub/redisstore/
func BenchmarkScrape(b *testing.B) {
	const n = 20_000
	srv := startRedis(b)
	s := open(b, srv.Addr(), "scrape", hub.StoreOptions{}, nil)
	ctx := context.Background()
	for i := range n {
		if err := s.CreateChannel(ctx, hub.ChannelSpec{ID: fmt.Sprintf("c%05d", i), MaxMessages: 10}, exp); err != nil {
			b.Fatal(err)
		}
		if err := s.CreateClient(ctx, hub.ClientSpec{ID: fmt.Sprintf("u%05d", i)}, exp); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("counts", func(b *testing.B) {
		for b.Loop() {
			c, err := s.Counts(ctx)
			if err != nil || c.Channels != n || c.Clients != n {
				b.Fatalf("counts %+v, %v", c, err)
			}
		}
	})
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			st, err := s.Status(ctx)
			if err != nil || st.Counts.Channels != n || len(st.Channels) != hub.StatusListLimit {
				b.Fatalf("status of %d channels, %v", len(st.Channels), err)
			}
		}
	})
}
