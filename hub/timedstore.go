package hub

import (
	"context"
	"time"
)

// timedStore records how long each store call takes, for the store latency
// metric.
type timedStore struct {
	Store
	latency *LatencyHistogram
}

func (s timedStore) observe(start time.Time) { s.latency.Observe(time.Since(start)) }

func (s timedStore) CreateChannel(ctx context.Context, spec ChannelSpec, exp Expiry) error {
	defer s.observe(time.Now())
	return s.Store.CreateChannel(ctx, spec, exp)
}

func (s timedStore) DeleteChannel(ctx context.Context, id string) (bool, error) {
	defer s.observe(time.Now())
	return s.Store.DeleteChannel(ctx, id)
}

func (s timedStore) Publish(ctx context.Context, channel string, encoded []byte, now time.Time, exp Expiry) (Message, error) {
	defer s.observe(time.Now())
	return s.Store.Publish(ctx, channel, encoded, now, exp)
}

func (s timedStore) CreateClient(ctx context.Context, id string, exp Expiry) error {
	defer s.observe(time.Now())
	return s.Store.CreateClient(ctx, id, exp)
}

func (s timedStore) Read(ctx context.Context, q ReadQuery, exp Expiry) (ReadResult, error) {
	defer s.observe(time.Now())
	return s.Store.Read(ctx, q, exp)
}

func (s timedStore) Touch(ctx context.Context, channels, clients []string, exp Expiry) error {
	defer s.observe(time.Now())
	return s.Store.Touch(ctx, channels, clients, exp)
}

func (s timedStore) Status(ctx context.Context) (Status, error) {
	defer s.observe(time.Now())
	return s.Store.Status(ctx)
}
