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
// primary, two replicas, three sentinels), a publisher that records every
// publish acknowledged to it, and readers on both nodes, both as long
// polls and as streams (reads that belong to a hub.Stream), while a fault
// makes Sentinel promote the replica. Afterwards every acknowledged
// message must be in the hub's history once, and every reader must have
// got exactly that history, in id order.

// failoverFault is one way a primary fails.
type failoverFault struct {
	name string
	// primaryArgs are extra arguments for the primary's redis-server.
	primaryArgs []string
	// inject makes the fault happen; Sentinel then fails over.
	inject func(t testing.TB, primary *redistest.Server, replicas []*redistest.Server)
}

var failoverFaults = []failoverFault{
	{name: "primary killed", inject: func(_ testing.TB, primary *redistest.Server, _ []*redistest.Server) { primary.Kill() }},
	{
		// The primary's process stalls about as long as the failover takes,
		// then runs the writes queued meanwhile before it learns it has
		// been demoted.
		name: "primary stalled by DEBUG SLEEP", primaryArgs: []string{"--enable-debug-command", "local"},
		inject: func(_ testing.TB, primary *redistest.Server, _ []*redistest.Server) {
			go func() { _, _ = primary.Run("DEBUG", "SLEEP", "3") }()
		},
	},
	{
		name: "primary paused by CLIENT PAUSE",
		inject: func(t testing.TB, primary *redistest.Server, _ []*redistest.Server) {
			if _, err := primary.Run("CLIENT", "PAUSE", "3000"); err != nil {
				t.Errorf("CLIENT PAUSE: %v", err)
			}
		},
	},
	{
		// The replicas stop answering long enough for the primary to drop
		// them (repl-timeout) and go on alone, then the primary dies and a
		// replica, lagging, is promoted.
		name: "replicas stalled, then primary killed", primaryArgs: []string{"--repl-timeout", "1"},
		inject: func(_ testing.TB, primary *redistest.Server, replicas []*redistest.Server) {
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

// runFailover runs the suite's scenario once for fault, with durable
// publishes (min_replicas 1) or without.
func runFailover(t testing.TB, fault failoverFault, durable bool) failoverOutcome {
	primary := redistest.Start(t, fault.primaryArgs...)
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
	start := time.Now()
	sentinelsAgree(t, sentinels, cfg.Name, servers)
	t.Logf("sentinels ready in %v", time.Since(start).Round(time.Millisecond))
	opts := Options{
		Client:  rueidis.ClientOption{InitAddress: addrs, Sentinel: rueidis.SentinelOption{MasterSet: cfg.Name}},
		Timeout: 2 * time.Second,
	}
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
	fault.inject(t, primary, replicas)
	switched := firstSwitch(t, switches, cfg.Name, primary.Addr(), failed)
	newPrimary := promoted(t, sentinels, cfg.Name, primary, servers)
	t.Logf("%s: Sentinel switched %v after the fault, to port %d", fault.name, switched.Sub(failed).Round(time.Millisecond), newPrimary.Port)
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
// Sentinel promoted.
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
	for _, fault := range failoverFaults {
		t.Run(fault.name, func(t *testing.T) {
			o := runFailover(t, fault, true)
			t.Logf("%+v", o)
			if o.acknowledged == 0 || !o.clean() {
				t.Errorf("with min_replicas 1: %+v; want messages acknowledged, and none lost, duplicated, delivered then lost, repeated, out of order or missed", o)
			}
		})
	}
}

// BenchmarkFailover measures what each fault does with and without durable
// publishes: one run of the suite's scenario each, its counts reported as
// metrics (b.N is not used; -benchtime 1x):
//
//	CI=true go test -run '^$' -bench Failover -benchtime 1x ./hub/redisstore/
func BenchmarkFailover(b *testing.B) {
	for _, fault := range failoverFaults {
		for _, durable := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/min_replicas=%d", fault.name, map[bool]int{false: 0, true: 1}[durable]), func(b *testing.B) {
				o := runFailover(b, fault, durable)
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
