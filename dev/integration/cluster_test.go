package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
	"github.com/simple-comet/caddy-comet/internal/caddyproc"
	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// The cluster tests run two Caddy nodes on one Redis: node A is the
// in-process Caddy (caddytest, port 9080), node B a separate caddy process
// built from ./cmd/caddy, as a second machine would run it.

// clusterSite is the comet site both nodes serve: the same hub on the same
// Redis.
func clusterSite(redisURL, extra string) func(addr string) string {
	return func(addr string) string {
		return fmt.Sprintf(`
%s {
	comet {
		hub cluster
		http_timeout 20s
		enable_status
		store redis %s {
			read_timeout 1s
		}
		%s
	}
}
`, addr, redisURL, extra)
	}
}

// twoNodes starts node A (in process, base) and node B (a process) on srv.
func twoNodes(t *testing.T, srv *redistest.Server) (a string, b *caddyproc.Process) {
	t.Helper()
	startCaddy(t, clusterSite(srv.URL(), "")("http://127.0.0.1:9080"))
	return base, caddyproc.Start(t, clusterSite(srv.URL(), ""))
}

func TestClusterPublishReachesHeldReadsOnTheOtherNode(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	registerChannel(t, a, "cl-news")
	registerChannel(t, b.Base, "cl-sports")

	// A read held on B, for two channels, released by a publish on A.
	held := goRead(t, b.Base, "cl-news|cl-sports", 0)
	heldReads(t, b.Base, 1)
	id1 := publish(t, a, "cl-news", "from A")
	rep := mustCode(t, awaitReply(t, held, "publish on A"), 200, 1, "")
	if m := rep.Messages["cl-news"]; len(m) != 1 || m[0].ID != id1 || m[0].Content != "from A" || rep.LastID != id1 {
		t.Fatalf("read on B: %+v last_id %d", rep.Messages, rep.LastID)
	}

	// And the other way round, continuing from last_id.
	held = goRead(t, a, "cl-news|cl-sports", rep.LastID)
	heldReads(t, a, 1)
	id2 := publish(t, b.Base, "cl-sports", "from B")
	rep = mustCode(t, awaitReply(t, held, "publish on B"), 200, 1, "")
	if m := rep.Messages["cl-sports"]; len(m) != 1 || m[0].ID != id2 || len(rep.Messages["cl-news"]) != 0 {
		t.Fatalf("read on A: %+v", rep.Messages)
	}
	if id2 <= id1 {
		t.Fatalf("id from B %d not above id from A %d", id2, id1)
	}

	// Many readers on both nodes, one publish: everyone gets it once.
	const perNode = 20
	var replies []<-chan response
	for range perNode {
		replies = append(replies, goRead(t, a, "cl-news", id2), goRead(t, b.Base, "cl-news", id2))
	}
	heldReads(t, a, perNode)
	heldReads(t, b.Base, perNode)
	id3 := publish(t, b.Base, "cl-news", "to all")
	for _, r := range replies {
		rep := mustCode(t, awaitReply(t, r, "fan-out"), 200, 1, "")
		if m := rep.Messages["cl-news"]; len(m) != 1 || m[0].ID != id3 {
			t.Fatalf("fan-out reply: %+v", rep.Messages)
		}
	}

	// Deleting on A releases a read held on B at once.
	held = goRead(t, b.Base, "cl-news", id3)
	heldReads(t, b.Base, 1)
	mustCode(t, do(t, http.MethodDelete, a+"/channels/cl-news.json", nil), 200, 2, "")
	r := awaitReply(t, held, "delete on A")
	if !strings.Contains(r.body, `"messages":{}`) {
		t.Fatalf("read on B after delete on A: %s", r.body)
	}
}

func TestClusterSessionsAreShared(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	registerClient(t, b.Base, "cl-alice")
	mustCode(t, post(t, a+"/clients.json", map[string][]string{"client_id": {"cl-alice"}}), 200, -2, "Client already exists")
	registerChannel(t, a, "cl-private", "use_sessions", "1")
	mustCode(t, post(t, b.Base+"/channels.json", map[string][]string{"channel_id": {"cl-private"}}), 200, -2, "Channel already exists")
	id := publish(t, b.Base, "cl-private", "secret")

	rep := mustCode(t, read(t, a, "cl-private", 0, "client_id", "cl-alice"), 200, 1, "")
	if m := rep.Messages["cl-private"]; len(m) != 1 || m[0].ID != id {
		t.Fatalf("alice (registered on B) reading on A: %+v", rep.Messages)
	}
	mustCode(t, read(t, a, "cl-private", 0), 200, -2, "No valid channels")
	mustCode(t, read(t, b.Base, "cl-private", 0, "client_id", "cl-mallory"), 200, -3, "Unregistered client_id")

	// Both nodes list the same hub.
	for _, n := range []string{a, b.Base} {
		st := get(t, n+"/status.json")
		if !strings.Contains(st.body, `"cl-alice"`) || !strings.Contains(st.body, `"cl-private"`) {
			t.Fatalf("status on %s: %s", n, st.body)
		}
	}
}

// Reloading one node answers its held reads at once and loses nothing: the
// other node keeps serving, and reads resumed with since get everything.
func TestClusterReloadLosesNothing(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	registerChannel(t, a, "cl-reload")
	id0 := publish(t, a, "cl-reload", "zero")

	heldA := goRead(t, a, "cl-reload", id0)
	heldB := goRead(t, b.Base, "cl-reload", id0)
	heldReads(t, a, 1)
	heldReads(t, b.Base, 1)

	// Reload B (a changed setting): its held read is answered empty at
	// once; A's stays held.
	b.Reload(clusterSite(srv.URL(), "session_timeout 2m")(b.Base))
	rep := mustCode(t, awaitReply(t, heldB, "reload of B"), 200, 1, "")
	if len(rep.Messages["cl-reload"]) != 0 || rep.LastID != id0 {
		t.Fatalf("B's held read at reload: %+v last_id %d", rep.Messages, rep.LastID)
	}
	resumeB := rep.LastID

	// A publish on the reloaded node reaches the read held on A.
	id1 := publishAcrossReload(t, b.Base, "cl-reload", "after B's reload")
	rep = mustCode(t, awaitReply(t, heldA, "publish on reloaded B"), 200, 1, "")
	if m := rep.Messages["cl-reload"]; len(m) != 1 || m[0].ID != id1 {
		t.Fatalf("A's held read: %+v", rep.Messages)
	}

	// Reload A while B holds a read; publishes on A after its reload reach B.
	heldB = goRead(t, b.Base, "cl-reload", id1)
	heldReads(t, b.Base, 1)
	if err := loadCaddyfile(clusterSite(srv.URL(), "session_timeout 3m")("http://127.0.0.1:9080")); err != nil {
		t.Fatal(err)
	}
	id2 := publishAcrossReload(t, a, "cl-reload", "after A's reload")
	rep = mustCode(t, awaitReply(t, heldB, "publish on reloaded A"), 200, 1, "")
	if m := rep.Messages["cl-reload"]; len(m) != 1 || m[0].ID != id2 {
		t.Fatalf("B's held read: %+v", rep.Messages)
	}

	// B's client resuming from where its read was cut by the reload gets
	// everything since, once.
	rep = mustCode(t, read(t, b.Base, "cl-reload", resumeB), 200, 1, "")
	if m := rep.Messages["cl-reload"]; len(m) != 2 || m[0].ID != id1 || m[1].ID != id2 {
		t.Fatalf("resumed read on B: %+v", rep.Messages)
	}
}

// publishAcrossReload publishes as a publisher that meets a reload must
// (docs/api.md, "Publishing exactly once"): with an idempotency key, sending
// again a request the reload cut off. Caddy's old server may close a
// connection a request has just gone out on, which a POST gets as EOF, and
// the request may or may not have been served; the key makes a retry of
// one that was publish nothing more, and answer with its id.
func publishAcrossReload(t *testing.T, base, channel, content string) int64 {
	t.Helper()
	key := fmt.Sprint("across-reload-", time.Now().UnixNano())
	var lastErr error
	for range 3 {
		req, err := http.NewRequest(http.MethodPost, base+"/channels/"+url.PathEscape(channel)+".json",
			strings.NewReader(url.Values{"content": {content}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		res, err := longPoll.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return mustCode(t, response{status: res.StatusCode, header: res.Header, body: string(body)}, 200, 1, "").MessageID
	}
	t.Fatalf("publishing to %s across a reload, 3 tries: %v", base, lastErr)
	return 0
}

// Redis down: both nodes answer -4 with 503; Redis back: both serve again,
// with what Redis kept, without a restart or reload.
func TestClusterRedisDown(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	a, b := twoNodes(t, srv)
	registerChannel(t, a, "cl-down")
	id := publish(t, b.Base, "cl-down", "kept")

	srv.Kill()
	for _, n := range []string{a, b.Base} {
		mustCode(t, post(t, n+"/channels/cl-down.json", map[string][]string{"content": {"x"}}), 503, -4, "Store unavailable")
		mustCode(t, read(t, n, "cl-down", 0), 503, -4, "Store unavailable")
	}

	srv.Restart()
	for _, n := range []string{a, b.Base} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := read(t, n, "cl-down", 0)
			if r.status == 200 {
				rep := mustCode(t, r, 200, 1, "")
				if m := rep.Messages["cl-down"]; len(m) != 1 || m[0].ID != id {
					t.Fatalf("after redis came back, %s: %s", n, r.body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d %s 10s after redis came back", n, r.status, r.body)
			}
			time.Sleep(50 * time.Millisecond) // reconnecting has no outside signal
		}
	}
	held := goRead(t, a, "cl-down", id)
	heldReads(t, a, 1)
	id2 := publish(t, b.Base, "cl-down", "after")
	rep := mustCode(t, awaitReply(t, held, "publish after recovery"), 200, 1, "")
	if m := rep.Messages["cl-down"]; len(m) != 1 || m[0].ID != id2 {
		t.Fatalf("after recovery: %+v", rep.Messages)
	}
}

// clusterExample is examples/cluster as written, only with its ports moved
// to free ones and its Redis to a test's.
type clusterExample struct {
	t     *testing.T
	ports map[string]string // the example's address -> the test's
	lb    string            // the balancer's URL
	nodes []string          // the nodes' URLs
}

func newClusterExample(t *testing.T, srv *redistest.Server) *clusterExample {
	c := &clusterExample{t: t, ports: map[string]string{"127.0.0.1:6379": srv.Addr()}}
	for _, p := range []string{"localhost:2021", "localhost:2022", "localhost:2023", "127.0.0.1:4081", "127.0.0.1:4082", "127.0.0.1:4083"} {
		host, _, _ := strings.Cut(p, ":")
		c.ports[p] = fmt.Sprintf("%s:%d", host, freeport.Get(t))
	}
	c.lb = "http://" + c.ports["127.0.0.1:4083"]
	c.nodes = []string{"http://" + c.ports["127.0.0.1:4081"], "http://" + c.ports["127.0.0.1:4082"]}
	return c
}

// load returns the example's Caddyfile name with the test's ports, and with
// each pair of edits (text, replacement) applied; the text must be there.
func (c *clusterExample) load(name string, edits ...string) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "cluster", name))
	if err != nil {
		c.t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			c.t.Fatalf("%s has no %q to change", name, edits[i])
		}
		text = strings.ReplaceAll(text, edits[i], edits[i+1])
	}
	for from, to := range c.ports {
		text = strings.ReplaceAll(text, from, to)
	}
	return text
}

// startBalancerFirst starts the balancer while no node runs, and returns
// once its first health probe of each node has failed, as it does when the
// balancer starts first (or with the nodes, before they listen).
func (c *clusterExample) startBalancerFirst(edits ...string) *caddyproc.Process {
	c.t.Helper()
	lb := caddyproc.StartCaddyfile(c.t, c.load("lb.Caddyfile", edits...))
	for _, n := range c.nodes {
		lb.WaitLog("health_checker.active", "HTTP request failed", strings.TrimPrefix(n, "http://"))
	}
	return lb
}

// startNodes starts both nodes and returns once each answers its own
// health probe (not the balancer's), with its Redis store open.
func (c *clusterExample) startNodes() []*caddyproc.Process {
	c.t.Helper()
	procs := []*caddyproc.Process{
		caddyproc.StartCaddyfile(c.t, c.load("node1.Caddyfile")),
		caddyproc.StartCaddyfile(c.t, c.load("node2.Caddyfile")),
	}
	for _, n := range c.nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := get(c.t, n+"/health.json")
			if r.status == 200 {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %s: health %d %q 10s after it started", n, r.status, r.body)
			}
			time.Sleep(20 * time.Millisecond) // polling the node's own state, not standing in for a signal
		}
	}
	return procs
}

// The example in examples/cluster runs as written (only its ports moved to
// free ones), the balancer started before the nodes as a recipe run in the
// background may well do: reads held through the balancer land on both
// nodes and one publish releases them all; with a node stopped the
// balancer keeps serving from the other.
func TestClusterExample(t *testing.T) {
	srv := redistest.Start(t)
	c := newClusterExample(t, srv)
	c.startBalancerFirst()
	nodes := c.startNodes()
	lb := c.lb

	if r := get(t, lb+"/health.json"); r.status != 200 {
		t.Fatalf("health through the balancer: %d %q", r.status, r.body)
	}
	registerChannel(t, lb, "ex-news")
	id0 := publish(t, lb, "ex-news", "zero")
	const readers = 6
	var replies []<-chan response
	for range readers {
		replies = append(replies, goRead(t, lb, "ex-news", id0))
	}
	// Round robin spreads the held reads over both nodes.
	heldReads(t, c.nodes[0], readers/2)
	heldReads(t, c.nodes[1], readers/2)
	id1 := publish(t, lb, "ex-news", "to everyone")
	for _, r := range replies {
		rep := mustCode(t, awaitReply(t, r, "publish through the balancer"), 200, 1, "")
		if m := rep.Messages["ex-news"]; len(m) != 1 || m[0].ID != id1 {
			t.Fatalf("reply through the balancer: %+v", rep.Messages)
		}
	}

	nodes[0].Stop()
	for i := range 4 {
		id := publishThroughBalancer(t, lb, "ex-news", fmt.Sprint("with node 1 down ", i))
		rep := mustCode(t, read(t, lb, "ex-news", id-1), 200, 1, "")
		if m := rep.Messages["ex-news"]; len(m) != 1 || m[0].ID != id {
			t.Fatalf("with node 1 down: %+v", rep.Messages)
		}
	}
}

// A balancer started before its nodes serves as soon as the nodes do: its
// first probe, which failed, does not keep them out until the next one.
// The probe interval is stretched to a minute here, so that a request that
// had to wait for the next probe would find no node up and fail (503 after
// lb_try_duration) instead of passing by luck of timing.
func TestClusterExampleBalancerStartedFirst(t *testing.T) {
	srv := redistest.Start(t)
	c := newClusterExample(t, srv)
	c.startBalancerFirst("health_interval 2s", "health_interval 1m")
	c.startNodes()
	for i := range 4 { // round robin: each node twice
		if r := get(t, c.lb+"/health.json"); r.status != 200 || r.body != healthOK {
			t.Fatalf("request %d through the balancer: %d %q, want the nodes' 200", i, r.status, r.body)
		}
	}
	registerChannel(t, c.lb, "first-news")
	publish(t, c.lb, "first-news", "served at once")
}

// publishThroughBalancer publishes through a load balancer whose node has
// just stopped: the balancer may send the publish down a kept-alive
// connection the node has closed, and answer 502 without retrying (a POST
// is not safe to repeat). A publisher retries then, as this one does, on
// 502 only.
func publishThroughBalancer(t *testing.T, lb, channel, content string) int64 {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r := post(t, lb+"/channels/"+url.PathEscape(channel)+".json", url.Values{"content": {content}})
		if r.status == http.StatusBadGateway && attempt < 3 {
			continue
		}
		return mustCode(t, r, 200, 1, "").MessageID
	}
}
