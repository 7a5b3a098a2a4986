package redisstore

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp"
	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// The failover suite: two nodes of one hub on a Sentinel deployment (one
// primary, two replicas, three sentinels) or a Cluster (three primaries
// with two replicas each), a publisher that records every
// publish acknowledged to it, and readers on both nodes, both as long
// polls and as event streams, all over HTTP (each node's API served by
// comethttp's plain handler, as Caddy serves it), while a fault
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
			g := startSentinelGroup(t, "cometdur", 2, args...)
			primary, name := g.config.Master, g.config.Name
			sentinelsAgree(t, g.sentinels, name, g.servers)
			return failoverSetup{
				client: g.client, primary: primary, replicas: g.config.Replicas,
				failedOver: func(t testing.TB, _ failoverFault, failed time.Time) (time.Time, *redistest.Server) {
					switched := firstSwitch(t, g.switches, name, primary.Addr(), failed)
					return switched, promoted(t, g.sentinels, name, primary, g.servers)
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
	// Each node is a hub on its own store (its own connections and
	// subscription, as a Caddy process has) served over HTTP by the API's
	// plain handler.
	var nodes [2]string
	for i := range nodes {
		h, err := hub.New("failover", hubCfg, func(so hub.StoreOptions) (hub.Store, error) { return Open(opts, so) })
		if err != nil {
			t.Fatalf("opening node %d: %v", i, err)
		}
		state := comethttp.NewHubState(h)
		api, err := comethttp.New(state, comethttp.Options{SSEHeartbeat: 500 * time.Millisecond, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(api)
		t.Cleanup(func() {
			api.Stop()
			srv.Close()
			state.Close()
			_ = h.Close()
		})
		nodes[i] = srv.URL
		if i == 0 {
			for _, c := range failoverChannels {
				if err := h.RegisterChannel(context.Background(), c, false, 1000); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// On each node a long-poll reader and an event stream.
	readCtx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	var readers []*failoverReader
	var readersDone sync.WaitGroup
	for _, n := range nodes {
		for _, stream := range []bool{false, true} {
			r := &failoverReader{node: n, stream: stream}
			readers = append(readers, r)
			readersDone.Go(func() { r.run(readCtx) })
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
	stopReaders()
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
	nodes  [2]string // the nodes' base URLs
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

// publish publishes m until a node acknowledges it (HTTP 200, return_code
// 1), alternating nodes, with its key as Idempotency-Key.
func (p *failoverPublisher) publish(m failoverMessage, i int) {
	for attempt := 0; time.Now().Before(p.giveUp); attempt++ {
		if id, ok := publishOverHTTP(p.nodes[(i+attempt)%2], m); ok {
			m.id = id
			p.mu.Lock()
			p.acked[m.key] = m
			p.mu.Unlock()
			return
		}
		time.Sleep(50 * time.Millisecond) // a publisher's retry delay
	}
}

// publishOverHTTP makes one publish of m to the node at base, and returns
// its message id when the node acknowledged it.
func publishOverHTTP(base string, m failoverMessage) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/channels/"+m.channel+".json",
		strings.NewReader(url.Values{"content": {m.key}}.Encode()))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Idempotency-Key", m.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	var rep struct {
		MessageID  int64 `json:"message_id"`
		ReturnCode int   `json:"return_code"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&rep) != nil || rep.ReturnCode != 1 {
		return 0, false
	}
	return rep.MessageID, true
}

func (p *failoverPublisher) wait() { p.wg.Wait() }

// failoverReader reads every channel on one node over HTTP, from its last
// id on, as a long poll (.json?since=) or as an event stream (.sse, with
// Last-Event-ID when it reconnects), and keeps what it got.
type failoverReader struct {
	node   string // the node's base URL
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

// failoverReply is what the readers need of a read's reply.
type failoverReply struct {
	Messages map[string][]struct {
		Content string `json:"content"`
		ID      int64  `json:"id"`
	} `json:"messages"`
	LastID     int64 `json:"last_id"`
	ReturnCode int   `json:"return_code"`
}

// take records a reply's messages, in id order, and its last id.
func (r *failoverReader) take(rep failoverReply) {
	var got []failoverMessage
	for c, msgs := range rep.Messages {
		for _, m := range msgs {
			got = append(got, failoverMessage{channel: c, key: m.Content, id: m.ID})
		}
	}
	slices.SortFunc(got, func(a, b failoverMessage) int { return cmp.Compare(a.id, b.id) })
	r.mu.Lock()
	r.got = append(r.got, got...)
	r.last = max(r.last, rep.LastID)
	r.mu.Unlock()
}

func (r *failoverReader) run(ctx context.Context) {
	path := r.node + "/channels/" + url.PathEscape(strings.Join(failoverChannels, "|"))
	for ctx.Err() == nil {
		var err error
		if r.stream {
			err = r.readStream(ctx, path+".sse")
		} else {
			err = r.poll(ctx, path+".json")
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond): // a client's retry delay
			}
		}
	}
}

// poll makes one long-poll read.
func (r *failoverReader) poll(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?since=%d", rawURL, r.lastID()), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var rep failoverReply
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		return err
	}
	if rep.ReturnCode != 1 {
		return fmt.Errorf("return code %d", rep.ReturnCode)
	}
	r.take(rep)
	return nil
}

// readStream reads one event stream until it ends; each event's data is a
// read's reply.
func (r *failoverReader) readStream(ctx context.Context, rawURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if last := r.lastID(); last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var rep failoverReply
		if err := json.Unmarshal([]byte(data), &rep); err != nil {
			return err
		}
		if rep.ReturnCode != 1 {
			return fmt.Errorf("return code %d", rep.ReturnCode)
		}
		r.take(rep)
	}
	return errors.New("stream ended")
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
