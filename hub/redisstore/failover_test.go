package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap/zaptest"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// failoverBound is how long after the failover (Sentinel's +switch-master,
// a Cluster replica's promotion) a publish through the store and a read of
// it back must work again, and the store's subscription be back.
const failoverBound = time.Second

// timedEvents records a store's notifications with the time each came.
type timedEvents struct {
	mu  sync.Mutex
	evs []timedEvent
}

type timedEvent struct {
	hub.Event
	at time.Time
}

func (e *timedEvents) notify(ev hub.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, timedEvent{ev, time.Now()})
	e.mu.Unlock()
}

// resubscribed returns when the store's subscription was confirmed again
// after it was lost at or after since: the second EventResync from since on
// (the first one reports the loss). It waits up to 15 s.
func (e *timedEvents) resubscribed(t *testing.T, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		e.mu.Lock()
		n := 0
		for _, ev := range e.evs {
			if ev.Kind == hub.EventResync && !ev.at.Before(since) {
				if n++; n == 2 {
					e.mu.Unlock()
					return ev.at
				}
			}
		}
		if time.Now().After(deadline) {
			for _, ev := range e.evs {
				t.Logf("event %v at %v", ev.Kind, ev.at.Sub(since))
			}
			e.mu.Unlock()
			t.Fatal("the store's subscription was not back 15s after the failover")
		}
		e.mu.Unlock()
		// Events are recorded as they come; this looks at them every 5 ms,
		// well below the bound it checks.
		time.Sleep(5 * time.Millisecond)
	}
}

// publishAndReadBack publishes to channel through s and reads the message
// back, over and over with short deadlines, until it works, and returns
// when it did. Each attempt is bounded so that one call stuck on a dead
// connection does not hide how soon a new call works.
func publishAndReadBack(s *Store, channel string, deadline time.Time) (time.Time, error) {
	var last error
	for i := 0; time.Now().Before(deadline); i++ {
		enc, _ := hub.EncodeContent(fmt.Sprint("during the failover ", i))
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		p, err := s.Publish(ctx, hub.Publication{Channel: channel, Encoded: enc}, time.Now(), exp)
		if err == nil {
			var res hub.ReadResult
			res, err = s.Read(ctx, hub.ReadQuery{Channels: []string{channel}, Since: p.Message.ID - 1}, exp)
			if err == nil {
				if len(res.Channels) == 1 && len(res.Channels[0].Messages) == 1 && res.Channels[0].Messages[0].ID == p.Message.ID {
					cancel()
					return time.Now(), nil
				}
				err = fmt.Errorf("read back %+v, want message %d", res, p.Message.ID)
			}
		}
		cancel()
		last = err
		// Calls to a dead master fail at once; a short pause keeps this
		// from spinning while no new master is known.
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("no publish and read back by the deadline: %w", last)
}

// recovery is when publishAndReadBack first worked, or why it never did.
type recovery struct {
	at  time.Time
	err error
}

// recoverInBackground runs publishAndReadBack on its own goroutine, so that
// the test can watch for the failover meanwhile, and hands back its result.
func recoverInBackground(s *Store, channel string, deadline time.Time) <-chan recovery {
	recovered := make(chan recovery, 1)
	go func() {
		at, err := publishAndReadBack(s, channel, deadline)
		recovered <- recovery{at, err}
	}()
	return recovered
}

// sentinelsAgree waits until every sentinel names the same master and sees
// a healthy replica of it, one a failover can promote, and returns that
// master. Sentinel announces neither, so this polls.
func sentinelsAgree(t testing.TB, sentinels []*redistest.Server, name string, servers map[int]*redistest.Server) *redistest.Server {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var master string
	for i := 0; i < len(sentinels); {
		m, err := sentinels[i].Run("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		ok := err == nil && (master == "" || m == master)
		if ok {
			var replicas string
			replicas, err = sentinels[i].Run("SENTINEL", "REPLICAS", name)
			ok = err == nil && healthyReplica(replicas)
		}
		switch {
		case ok:
			master = m
			i++
		case time.Now().After(deadline):
			t.Fatalf("sentinel %s: master %q (others: %q), no healthy replica or no agreement (%v)", sentinels[i].Addr(), m, master, err)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	port, _ := strconv.Atoi(strings.Fields(master)[1])
	if servers[port] == nil {
		t.Fatalf("sentinels name %q, none of the test's servers", master)
	}
	return servers[port]
}

// healthyReplica reports whether SENTINEL REPLICAS's reply (as Command
// flattens it: one key or value a line, replica after replica) lists a
// replica Sentinel would promote.
func healthyReplica(reply string) bool {
	lines := strings.Split(reply, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i] != "name" {
			continue
		}
		fields := map[string]string{}
		for j := i + 2; j+1 < len(lines) && lines[j] != "name"; j += 2 {
			fields[lines[j]] = lines[j+1]
		}
		if fields["flags"] == "slave" && fields["master-link-status"] == "ok" {
			return true
		}
	}
	return false
}

// firstSwitch returns the earliest +switch-master, read after since, away
// from oldMaster, from whichever sentinel said it first. Sentinels that did
// not lead the failover say it later, when the leader's hello reaches them.
func firstSwitch(t testing.TB, switches []<-chan redistest.Message, name, oldMaster string, since time.Time) time.Time {
	t.Helper()
	// "<name> <old ip> <old port> <new ip> <new port>"
	want := name + " " + strings.Replace(oldMaster, ":", " ", 1) + " "
	timeout := time.After(20 * time.Second)
	for {
		for _, ch := range switches {
			select {
			case m := <-ch:
				if m.At.After(since) && strings.HasPrefix(m.Payload, want) {
					return m.At
				}
			default:
			}
		}
		select {
		case <-timeout:
			t.Fatalf("no +switch-master away from %s within 20s", oldMaster)
		case <-time.After(time.Millisecond):
		}
	}
}

// sentinelGroup is a Sentinel deployment for the failover tests: a
// primary, its replicas, three sentinels that fail over fast, and what the
// sentinels announce.
type sentinelGroup struct {
	config    redistest.SentinelConfig
	servers   map[int]*redistest.Server // the primary and replicas, by port
	sentinels []*redistest.Server
	// switches are the sentinels' +switch-master announcements, one
	// subscription each.
	switches []<-chan redistest.Message
	// client reaches the primary through the sentinels.
	client rueidis.ClientOption
}

// startSentinelGroup starts a primary (with primaryArgs) and n replicas of
// it, and three sentinels that monitor them as name, told of the replicas
// up front, with down-after-milliseconds 500 and failover-timeout 2s.
func startSentinelGroup(t testing.TB, name string, n int, primaryArgs ...string) *sentinelGroup {
	t.Helper()
	primary := redistest.Start(t, primaryArgs...)
	g := &sentinelGroup{servers: map[int]*redistest.Server{primary.Port: primary}}
	var replicas []*redistest.Server
	for range n {
		r := redistest.Replica(t, primary)
		g.servers[r.Port] = r
		replicas = append(replicas, r)
	}
	g.config = redistest.SentinelConfig{
		Name: name, Master: primary, Replicas: replicas, Count: 3,
		DownAfter: 500 * time.Millisecond, FailoverTimeout: 2 * time.Second,
	}
	g.sentinels = redistest.Sentinels(t, g.config)
	var addrs []string
	for _, s := range g.sentinels {
		g.switches = append(g.switches, redistest.Subscribe(t, s.Addr(), "+switch-master"))
		addrs = append(addrs, s.Addr())
	}
	g.client = rueidis.ClientOption{InitAddress: addrs, Sentinel: rueidis.SentinelOption{MasterSet: name}}
	return g
}

// The master of a Sentinel deployment fails three times in a row: first its
// host hangs with the sentinel the store asked first (frozen: connections
// neither answer nor close), then it crashes (kill -9), twice. After each
// of Sentinel's switches, a publish through the store and a read of it back
// work within failoverBound, and so does the store's subscription (held
// reads are woken again).
func TestSentinelFailoverIsFollowedAtOnce(t *testing.T) {
	g := startSentinelGroup(t, "cometfo", 3)
	servers, sentinels, switches := g.servers, g.sentinels, g.switches
	cfg := g.config
	var evs timedEvents
	s, err := Open(Options{
		Client:  g.client,
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

	live := sentinels
	var lastSwitch time.Time
	var worst time.Duration
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		primary := sentinelsAgree(t, live, cfg.Name, servers)
		// A sentinel that took part in a failover starts no other of the
		// same master within twice the failover timeout (Sentinel's rule),
		// and nothing announces the end of that wait.
		time.Sleep(time.Until(lastSwitch.Add(2*cfg.FailoverTimeout + 200*time.Millisecond)))

		killed := time.Now()
		if round == 1 {
			// The store's client asks the first sentinel first.
			primary.Freeze()
			sentinels[0].Freeze()
			live = sentinels[1:]
		} else {
			primary.Kill()
		}
		recovered := recoverInBackground(s, "c", killed.Add(30*time.Second))
		switched := firstSwitch(t, switches, cfg.Name, primary.Addr(), killed)
		r := <-recovered
		if r.err != nil {
			t.Fatalf("round %d: %v", round, r.err)
		}
		resub := evs.resubscribed(t, killed)
		calls, sub := r.at.Sub(switched), resub.Sub(switched)
		t.Logf("round %d: switch %v after the failure; publish and read back %v after the switch, subscription %v after it",
			round, switched.Sub(killed).Round(time.Millisecond), calls.Round(time.Millisecond), sub.Round(time.Millisecond))
		if calls > failoverBound || sub > failoverBound {
			t.Errorf("round %d: publish and read back %v, subscription %v after Sentinel's switch; want both within %v",
				round, calls.Round(time.Millisecond), sub.Round(time.Millisecond), failoverBound)
		}
		worst = max(worst, calls, sub)
		lastSwitch = switched
	}
	t.Logf("worst of %d failovers: %v after Sentinel's switch", rounds, worst.Round(time.Millisecond))
}
