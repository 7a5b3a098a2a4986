package redisstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// The failover suite: two nodes of one hub on a Sentinel deployment (one
// primary, two replicas, three sentinels) or a Cluster (three primaries
// with two replicas each), a publisher that records every
// publish acknowledged to it, and readers on both nodes, both as long
// polls and as streams (reads that belong to a hub.Stream), while a fault
// makes Sentinel or the Cluster promote a replica. Afterwards every acknowledged
// message must be in the hub's history once, and every reader must have
// got exactly that history, in id order.

// failoverDeployment is a way to deploy Redis with replicas that fail over:
// Sentinel, or Cluster.
type failoverDeployment struct {
	name string
	// stall is how long a fault that stalls the primary lasts, long enough
	// for the deployment to fail over surely.
	stall time.Duration
	// start starts the deployment, with args as extra arguments of the
	// hub's primary (of every node on Cluster), once it is ready to fail
	// over.
	start func(t testing.TB, args []string) failoverSetup
}

// failoverSetup is a started deployment.
type failoverSetup struct {
	client rueidis.ClientOption
	// primary serves the hub (its slot, on Cluster); replicas replicate it.
	primary  *redistest.Server
	replicas []*redistest.Server
	// failedOver waits for the failover that follows a fault at failed,
	// and returns when it happened (Sentinel's +switch-master, the
	// replica's promotion on Cluster) and the primary after it.
	failedOver func(t testing.TB, fault failoverFault, failed time.Time) (time.Time, *redistest.Server)
}

var failoverDeployments = []failoverDeployment{
	{
		// One primary, two replicas, three sentinels.
		name: "Sentinel", stall: 3 * time.Second,
		start: func(t testing.TB, args []string) failoverSetup {
			primary := redistest.Start(t, args...)
			servers := map[int]*redistest.Server{primary.Port: primary}
			var replicas []*redistest.Server
			for range 2 {
				r := redistest.Replica(t, primary)
				servers[r.Port] = r
				replicas = append(replicas, r)
			}
			cfg := redistest.SentinelConfig{
				Name: "cometdur", Master: primary, Replicas: replicas, Count: 3,
				DownAfter: 500 * time.Millisecond, FailoverTimeout: 2 * time.Second,
			}
			sentinels := redistest.Sentinels(t, cfg)
			var switches []<-chan redistest.Message
			var addrs []string
			for _, s := range sentinels {
				switches = append(switches, redistest.Subscribe(t, s.Addr(), "+switch-master"))
				addrs = append(addrs, s.Addr())
			}
			sentinelsAgree(t, sentinels, cfg.Name, servers)
			return failoverSetup{
				client:  rueidis.ClientOption{InitAddress: addrs, Sentinel: rueidis.SentinelOption{MasterSet: cfg.Name}},
				primary: primary, replicas: replicas,
				failedOver: func(t testing.TB, _ failoverFault, failed time.Time) (time.Time, *redistest.Server) {
					switched := firstSwitch(t, switches, cfg.Name, primary.Addr(), failed)
					return switched, promoted(t, sentinels, cfg.Name, primary, servers)
				},
			}
		},
	},
	{
		// Three primaries with two replicas each, so that the hub's new
		// primary still has a replica for min_replicas 1; a node is failed
		// after a second without an answer (cluster-node-timeout).
		name: "Cluster", stall: 5 * time.Second,
		start: func(t testing.TB, args []string) failoverSetup {
			c := redistest.StartClusterWith(t, redistest.ClusterConfig{
				Primaries: 3, Replicas: 2, NodeTimeout: time.Second, Args: args,
			})
			primary := c.Primary(c.Slot(newKeys(DefaultKeyPrefix, "failover").id()))
			replicas := c.Replicas(primary)
			return failoverSetup{
				client:  rueidis.ClientOption{InitAddress: c.Addrs()},
				primary: primary, replicas: replicas,
				failedOver: func(t testing.TB, fault failoverFault, failed time.Time) (time.Time, *redistest.Server) {
					if fault.clusterKeepsPrimary {
						return failed, primary
					}
					newPrimary, at := c.Promoted(primary, 20*time.Second)
					return at, newPrimary
				},
			}
		},
	},
}

// failoverFault is one way a primary fails.
type failoverFault struct {
	name string
	// primaryArgs are extra arguments for the primary's redis-server.
	primaryArgs []string
	// inject makes the fault happen, on the deployment's primary and its
	// replicas, stalls lasting stall; the deployment then fails over.
	inject func(t testing.TB, primary *redistest.Server, replicas []*redistest.Server, stall time.Duration)
	// clusterKeepsPrimary says that a Cluster does not fail over: the
	// fault leaves the cluster bus answering.
	clusterKeepsPrimary bool
}

var failoverFaults = []failoverFault{
	{name: "primary killed", inject: func(_ testing.TB, primary *redistest.Server, _ []*redistest.Server, _ time.Duration) { primary.Kill() }},
	{
		// The primary's process stalls longer than the failover takes,
		// then runs the writes queued meanwhile before it learns it has
		// been demoted.
		name: "primary stalled by DEBUG SLEEP", primaryArgs: []string{"--enable-debug-command", "local"},
		inject: func(_ testing.TB, primary *redistest.Server, _ []*redistest.Server, stall time.Duration) {
			go func() { _, _ = primary.Run("DEBUG", "SLEEP", fmt.Sprint(stall.Seconds())) }()
		},
	},
	{
		// Clients get no answers; on Sentinel its pings go unanswered too
		// and it fails over, while a Cluster's nodes talk on their own bus
		// and keep the primary.
		name: "primary paused by CLIENT PAUSE", clusterKeepsPrimary: true,
		inject: func(t testing.TB, primary *redistest.Server, _ []*redistest.Server, stall time.Duration) {
			if _, err := primary.Run("CLIENT", "PAUSE", fmt.Sprint(stall.Milliseconds())); err != nil {
				t.Errorf("CLIENT PAUSE: %v", err)
			}
		},
	},
	{
		// The replicas stop answering long enough for the primary to drop
		// them (repl-timeout) and go on alone, then the primary dies and a
		// replica, lagging, is promoted.
		name: "replicas stalled, then primary killed", primaryArgs: []string{"--repl-timeout", "1"},
		inject: func(_ testing.TB, primary *redistest.Server, replicas []*redistest.Server, _ time.Duration) {
			for _, r := range replicas {
				r.Freeze()
			}
			time.Sleep(3 * time.Second) // the length of the stall: part of the scenario
			primary.Kill()
			for _, r := range replicas {
				r.Thaw()
			}
		},
	},
}

// failoverChannels are the channels the publisher spreads its messages
// over; readers read them all in one read.
var failoverChannels = []string{"fo0", "fo1", "fo2", "fo3"}

// failoverOutcome counts what a failover did to the messages.
type failoverOutcome struct {
	published, acknowledged int
	// lost: acknowledged, and not in the history afterwards (or there
	// under another id). duplicated: in the history more than once.
	lost, duplicated int
	// Of the deliveries to readers: of a message the history does not
	// hold (delivered, then lost); the same message again, or one with an
	// id below one delivered before it; and messages of the history a
	// reader never got.
	phantom, repeatedOrBackwards, missed int
}

func (o failoverOutcome) clean() bool {
	return o.lost == 0 && o.duplicated == 0 && o.phantom == 0 && o.repeatedOrBackwards == 0 && o.missed == 0
}

// runFailover runs the suite's scenario once on deployment d for fault,
// with durable publishes (min_replicas 1) or without.
func runFailover(t testing.TB, d failoverDeployment, fault failoverFault, durable bool) failoverOutcome {
	start := time.Now()
	setup := d.start(t, fault.primaryArgs)
	t.Logf("%s ready in %v", d.name, time.Since(start).Round(time.Millisecond))
	opts := Options{Client: setup.client, Timeout: 2 * time.Second}
	if durable {
		opts.MinReplicas, opts.ReplicaTimeout = 1, 500*time.Millisecond
	}
	hubCfg := hub.Config{HTTPTimeout: time.Second, MessagesPerChannel: 1000, MaxRetainedMessages: 1000}
	var nodes [2]*hub.Hub
	for i := range nodes {
		h, err := hub.New("failover", hubCfg, func(so hub.StoreOptions) (hub.Store, error) { return Open(opts, so) })
		if err != nil {
			t.Fatalf("opening node %d: %v", i, err)
		}
		t.Cleanup(func() { _ = h.Close() })
		nodes[i] = h
	}
	ctx := context.Background()
	for _, c := range failoverChannels {
		if err := nodes[0].RegisterChannel(ctx, c, false, 1000); err != nil {
			t.Fatal(err)
		}
	}

	stopReaders := make(chan struct{})
	var readers []*failoverReader
	var readersDone sync.WaitGroup
	for _, n := range nodes {
		for _, stream := range []bool{false, true} {
			r := &failoverReader{node: n, stream: stream}
			readers = append(readers, r)
			readersDone.Go(func() { r.run(stopReaders) })
		}
	}

	// 80 publishes a second, each retried with its idempotency key, on
	// either node, until acknowledged.
	p := &failoverPublisher{nodes: nodes, giveUp: time.Now().Add(20 * time.Second)}
	stopPublishing := make(chan struct{})
	publishing := make(chan struct{})
	go func() {
		defer close(publishing)
		p.run(stopPublishing)
	}()

	time.Sleep(time.Second) // traffic before the fault: part of the scenario
	failed := time.Now()
	fault.inject(t, setup.primary, setup.replicas, d.stall)
	switched, newPrimary := setup.failedOver(t, fault, failed)
	t.Logf("%s, %s: failed over %v after the fault, from port %d to %d", d.name, fault.name,
		switched.Sub(failed).Round(time.Millisecond), setup.primary.Port, newPrimary.Port)
	time.Sleep(time.Until(switched.Add(2 * time.Second))) // traffic after the failover: part of the scenario
	close(stopPublishing)
	<-publishing
	p.wait()

	history := failoverHistory(t, newPrimary, durable)
	// Readers stop once each has read up to the history's newest id.
	newest := int64(0)
	for _, m := range history {
		newest = max(newest, m.id)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, r := range readers {
		for r.lastID() < newest && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling a reader's progress, which it does not announce
		}
	}
	close(stopReaders)
	readersDone.Wait()

	return p.outcome(history, readers)
}

// promoted waits until every sentinel names a master other than old, the
// same one, and returns it. Sentinel announces no such agreement.
func promoted(t testing.TB, sentinels []*redistest.Server, name string, old *redistest.Server, servers map[int]*redistest.Server) *redistest.Server {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var masters []string
		for _, s := range sentinels {
			m, err := s.Run("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
			if err == nil {
				masters = append(masters, m)
			}
		}
		if len(masters) == len(sentinels) && len(slices.Compact(slices.Clone(masters))) == 1 {
			var port int
			if _, err := fmt.Sscanf(strings.Fields(masters[0])[1], "%d", &port); err == nil && port != old.Port && servers[port] != nil {
				return servers[port]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinels do not agree on a new master 20s after the fault: %q", masters)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failoverMessage is a message as the suite tracks it: its content is its
// publish's idempotency key, unique to it.
type failoverMessage struct {
	channel, key string
	id           int64
}

type failoverPublisher struct {
	nodes  [2]*hub.Hub
	giveUp time.Time

	wg    sync.WaitGroup
	mu    sync.Mutex
	sent  int
	acked map[string]failoverMessage // by key
}

func (p *failoverPublisher) run(stop <-chan struct{}) {
	p.acked = make(map[string]failoverMessage)
	tick := time.NewTicker(time.Second / 80)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
		m := failoverMessage{channel: failoverChannels[i%len(failoverChannels)], key: fmt.Sprintf("m%05d", i)}
		p.wg.Go(func() { p.publish(m, i) })
	}
}

// publish publishes m until a node acknowledges it, alternating nodes.
func (p *failoverPublisher) publish(m failoverMessage, i int) {
	for attempt := 0; time.Now().Before(p.giveUp); attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := p.nodes[(i+attempt)%2].PublishOnce(ctx, m.channel, m.key, m.key)
		cancel()
		if err == nil {
			m.id = res.ID
			p.mu.Lock()
			p.acked[m.key] = m
			p.mu.Unlock()
			return
		}
		time.Sleep(50 * time.Millisecond) // a publisher's retry delay
	}
}

func (p *failoverPublisher) wait() { p.wg.Wait() }

// failoverReader reads every channel on one node, from its last id on, as
// a long poll or as a stream's reads, and keeps what it got.
type failoverReader struct {
	node   *hub.Hub
	stream bool

	mu   sync.Mutex
	got  []failoverMessage
	last int64
}

func (r *failoverReader) lastID() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *failoverReader) run(stop <-chan struct{}) {
	req := hub.ReadRequest{Channels: strings.Join(failoverChannels, "|")}
	if r.stream {
		s, err := r.node.OpenStream("")
		if err != nil {
			panic(err)
		}
		defer s.Close()
		req.Stream, req.Hold = s, 200*time.Millisecond
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		reply, err := r.node.Read(context.Background(), req, stop)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // a client's retry delay
			continue
		}
		r.mu.Lock()
		for _, c := range reply.Channels {
			for _, m := range c.Messages {
				r.got = append(r.got, failoverMessage{channel: c.ID, key: contentOf(m), id: m.ID})
			}
		}
		r.last = max(r.last, reply.LastID)
		r.mu.Unlock()
		req.Since = reply.LastID
	}
}

// contentOf is a message's content, which the suite's publisher makes a
// plain JSON string.
func contentOf(m hub.Message) string {
	js := string(m.JSON)
	_, after, _ := strings.Cut(js, `"content":"`)
	content, _, _ := strings.Cut(after, `"`)
	return content
}

// failoverHistory reads every channel's whole history from the primary
// after the failover.
func failoverHistory(t testing.TB, primary *redistest.Server, durable bool) []failoverMessage {
	t.Helper()
	opts := Options{Client: rueidis.ClientOption{InitAddress: []string{primary.Addr()}}, Timeout: 2 * time.Second}
	if durable {
		// Its readers see what the durable nodes' readers see.
		opts.MinReplicas, opts.ReplicaTimeout = 1, 500*time.Millisecond
	}
	s, err := Open(opts, hub.StoreOptions{Hub: "failover"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Read(context.Background(), hub.ReadQuery{Channels: failoverChannels}, hub.Expiry{})
	if err != nil {
		t.Fatal(err)
	}
	var out []failoverMessage
	for _, c := range res.Channels {
		for _, m := range c.Messages {
			out = append(out, failoverMessage{channel: c.ID, key: contentOf(m), id: m.ID})
		}
	}
	return out
}

func (p *failoverPublisher) outcome(history []failoverMessage, readers []*failoverReader) failoverOutcome {
	o := failoverOutcome{published: p.sent, acknowledged: len(p.acked)}
	inHistory := make(map[string]failoverMessage)
	for _, m := range history {
		if _, twice := inHistory[m.key]; twice {
			o.duplicated++
		}
		inHistory[m.key] = m
	}
	for _, key := range slices.Sorted(maps.Keys(p.acked)) {
		if h, ok := inHistory[key]; !ok || h.id != p.acked[key].id {
			o.lost++
		}
	}
	for _, r := range readers {
		seen := make(map[string]bool)
		lastOf := make(map[string]int64)
		for _, m := range r.got {
			if h, ok := inHistory[m.key]; !ok || h.id != m.id {
				o.phantom++
			}
			if seen[m.key] || m.id <= lastOf[m.channel] {
				o.repeatedOrBackwards++
			}
			seen[m.key] = true
			lastOf[m.channel] = m.id
		}
		for key := range inHistory {
			if !seen[key] {
				o.missed++
			}
		}
	}
	return o
}

// With durable publishes, no fault of the primary loses, repeats or
// reorders an acknowledged message, for the history or for any reader.
func TestFailoverLosesNothingWithMinReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("failover suite skipped in -short mode")
	}
	for _, d := range failoverDeployments {
		for _, fault := range failoverFaults {
			t.Run(d.name+"/"+fault.name, func(t *testing.T) {
				o := runFailover(t, d, fault, true)
				t.Logf("%+v", o)
				if o.acknowledged == 0 || !o.clean() {
					t.Errorf("with min_replicas 1: %+v; want messages acknowledged, and none lost, duplicated, delivered then lost, repeated, out of order or missed", o)
				}
			})
		}
	}
}

// BenchmarkFailover measures what each fault does with and without durable
// publishes: one run of the suite's scenario each, its counts reported as
// metrics (b.N is not used; -benchtime 1x):
//
//	CI=true go test -run '^$' -bench Failover -benchtime 1x ./hub/redisstore/
func BenchmarkFailover(b *testing.B) {
	for _, d := range failoverDeployments {
		for _, fault := range failoverFaults {
			for _, durable := range []bool{false, true} {
				b.Run(fmt.Sprintf("%s/%s/min_replicas=%d", d.name, fault.name, map[bool]int{false: 0, true: 1}[durable]), func(b *testing.B) {
					o := runFailover(b, d, fault, durable)
					b.ReportMetric(float64(o.acknowledged), "acked")
					b.ReportMetric(float64(o.lost), "lost")
					b.ReportMetric(float64(o.duplicated), "duplicated")
					b.ReportMetric(float64(o.phantom), "delivered-then-lost")
					b.ReportMetric(float64(o.repeatedOrBackwards), "repeated-or-backwards")
					b.ReportMetric(float64(o.missed), "missed")
				})
			}
		}
	}
}
