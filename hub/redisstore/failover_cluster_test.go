package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap/zaptest"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// The primary that serves a hub's slot on a Redis Cluster fails four times
// in a row: its host hangs (frozen: connections neither answer nor close),
// then it crashes (kill -9), alternately. After each promotion of its
// replica, a publish through the store and a read of it back work within
// failoverBound, and so does the store's (sharded) subscription. The
// promotion is the moment the replica's ROLE says master: it has taken the
// slots then, and only then tells the other nodes.
func TestClusterFailoverIsFollowedAtOnce(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterConfig{Primaries: 3, Replicas: 1, NodeTimeout: time.Second})
	var evs timedEvents
	s, err := Open(Options{
		Client:  rueidis.ClientOption{InitAddress: c.Addrs()},
		Timeout: time.Second,
		Logger:  zaptest.NewLogger(t),
	}, hub.StoreOptions{Hub: "failover", Notify: evs.notify})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.CreateChannel(context.Background(), hub.ChannelSpec{ID: "c", MaxMessages: 10}, exp); err != nil {
		t.Fatal(err)
	}
	slot := c.Slot(s.keys.id())

	var worst time.Duration
	const rounds = 4
	for round := 1; round <= rounds; round++ {
		primary := c.Primary(slot)
		failed := time.Now()
		freeze := round%2 == 1
		if freeze {
			primary.Freeze()
		} else {
			primary.Kill()
		}
		recovered := recoverInBackground(s, "c", failed.Add(30*time.Second))
		_, promoted := c.Promoted(primary, 20*time.Second)
		r := <-recovered
		if r.err != nil {
			t.Fatalf("round %d: %v", round, r.err)
		}
		resub := evs.resubscribed(t, failed)
		calls, sub := r.at.Sub(promoted), resub.Sub(promoted)
		how := "killed"
		if freeze {
			how = "frozen"
		}
		t.Logf("round %d (%s): promotion %v after the failure; publish and read back %v after it, subscription %v after it",
			round, how, promoted.Sub(failed).Round(time.Millisecond), calls.Round(time.Millisecond), sub.Round(time.Millisecond))
		if calls > failoverBound || sub > failoverBound {
			t.Errorf("round %d: publish and read back %v, subscription %v after the promotion; want both within %v",
				round, calls.Round(time.Millisecond), sub.Round(time.Millisecond), failoverBound)
		}
		worst = max(worst, calls, sub)

		// The failed node comes back as a replica of the one that
		// replaced it, for the next round to fail over to.
		primary.Kill()
		primary.Restart()
		c.Settle()
	}
	t.Logf("worst of %d failovers: %v after the promotion", rounds, worst.Round(time.Millisecond))
}
