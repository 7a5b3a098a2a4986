package hub

import (
	"context"
	"time"
)

// timedStore records how long each store call takes, for the store latency
// metric. Hub.readStore, under held reads' goroutines, times its store reads
// itself to save a frame (docs/design.md, "The stack budget of a held read").
type timedStore struct {
	Store
	latency *LatencyHistogram
}

func (s timedStore) observe(start time.Time) { s.latency.Observe(time.Since(start)) }

func (s timedStore) CreateChannel(ctx context.Context, spec ChannelSpec, exp Expiry) error {
	start := time.Now()
	err := s.Store.CreateChannel(ctx, spec, exp)
	s.observe(start)
	return err
}

func (s timedStore) DeleteChannel(ctx context.Context, id string) (bool, error) {
	start := time.Now()
	removed, err := s.Store.DeleteChannel(ctx, id)
	s.observe(start)
	return removed, err
}

func (s timedStore) Publish(ctx context.Context, p Publication, now time.Time, exp Expiry) (Published, error) {
	start := time.Now()
	m, err := s.Store.Publish(ctx, p, now, exp)
	s.observe(start)
	return m, err
}

func (s timedStore) CreateClient(ctx context.Context, spec ClientSpec, exp Expiry) error {
	start := time.Now()
	err := s.Store.CreateClient(ctx, spec, exp)
	s.observe(start)
	return err
}

func (s timedStore) Read(ctx context.Context, q ReadQuery, exp Expiry) (ReadResult, error) {
	start := time.Now()
	res, err := s.Store.Read(ctx, q, exp)
	s.observe(start)
	return res, err
}

func (s timedStore) Touch(ctx context.Context, channels, clients []string, exp Expiry) error {
	start := time.Now()
	err := s.Store.Touch(ctx, channels, clients, exp)
	s.observe(start)
	return err
}

func (s timedStore) Status(ctx context.Context) (Status, error) {
	start := time.Now()
	st, err := s.Store.Status(ctx)
	s.observe(start)
	return st, err
}

func (s timedStore) Counts(ctx context.Context) (Counts, error) {
	start := time.Now()
	c, err := s.Store.Counts(ctx)
	s.observe(start)
	return c, err
}
