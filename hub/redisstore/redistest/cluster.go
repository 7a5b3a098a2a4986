package redistest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster: primaries that split the 16384 slots, and
// optionally replicas of each.
type Cluster struct {
	// Nodes are every node started, primaries first (in slot order), then
	// the replicas, primary after primary. A node's role may change when
	// the cluster fails over; Primary and Replicas say what it is now.
	Nodes []*Server

	t    testing.TB
	ids  map[*Server]string
	byID map[string]*Server
}

// ClusterConfig describes a Redis Cluster to start.
type ClusterConfig struct {
	// Primaries is the number of primaries; a failover needs the votes of
	// a majority of them, so 3 is the least that fails over. Default: 3.
	Primaries int
	// Replicas is the number of replicas of each primary. Default: 0.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before it is failed and a replica of it promoted. Default: 5 s.
	NodeTimeout time.Duration
	// Args are extra redis-server arguments for every node, as in Start.
	Args []string
}

// StartCluster starts n primaries without replicas, splits the 16384 slots
// between them, joins them and returns once every node reports
// cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterConfig{Primaries: n})
}

// StartClusterWith starts the cluster cfg describes and returns once every
// node reports cluster_state:ok, every node sees every other with the same
// roles, and every replica has finished its first sync.
func StartClusterWith(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Primaries <= 0 {
		cfg.Primaries = 3
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 5 * time.Second
	}
	c := &Cluster{t: t, ids: map[*Server]string{}, byID: map[string]*Server{}}
	args := append([]string{
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(cfg.NodeTimeout.Milliseconds(), 10),
		// A primary waits 5 s by default before a diskless sync, for more
		// replicas to share it.
		"--repl-diskless-sync-delay", "0",
	}, cfg.Args...)
	for range cfg.Primaries * (1 + cfg.Replicas) {
		node := Start(t, args...)
		id, err := node.Run("CLUSTER", "MYID")
		if err != nil {
			t.Fatalf("node id of %s: %v", node.Addr(), err)
		}
		id = strings.TrimSpace(id)
		c.Nodes = append(c.Nodes, node)
		c.ids[node], c.byID[id] = id, node
	}
	const slots = 16384
	n := cfg.Primaries
	for i, node := range c.Nodes[:n] {
		from, to := i*slots/n, (i+1)*slots/n-1
		if _, err := node.Run("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(from), strconv.Itoa(to)); err != nil {
			t.Fatalf("assigning slots %d-%d: %v", from, to, err)
		}
	}
	for _, node := range c.Nodes[1:] {
		if _, err := c.Nodes[0].Run("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(node.Port)); err != nil {
			t.Fatalf("joining the cluster: %v", err)
		}
	}
	// A node replicates a primary it knows of: wait for gossip to tell
	// each replica about its primary, then make it one.
	for i, r := range c.Nodes[n:] {
		primary := c.Nodes[i/cfg.Replicas]
		c.poll("replica "+r.Addr()+" to learn of its primary", func() (bool, string) {
			_, err := r.Run("CLUSTER", "REPLICATE", c.ids[primary])
			return err == nil, errString(err)
		})
	}
	c.Settle()
	return c
}

// Addrs lists the nodes' host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// ID is node's cluster node id.
func (c *Cluster) ID(node *Server) string { return c.ids[node] }

// Running reports whether s's process runs (it may be frozen).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, flags, master string
	slots             []string
}

func (n clusterNode) is(flag string) bool { return slices.Contains(strings.Split(n.flags, ","), flag) }

// view is CLUSTER NODES as from asks it, by node id.
func (c *Cluster) view(from *Server) (map[string]clusterNode, error) {
	out, err := from.Run("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	nodes := map[string]clusterNode{}
	for line := range strings.Lines(out) {
		// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		nodes[f[0]] = clusterNode{id: f[0], flags: f[2], master: f[3], slots: f[8:]}
	}
	return nodes, nil
}

// Slot is the hash slot of key.
func (c *Cluster) Slot(key string) int {
	c.t.Helper()
	for _, node := range c.Nodes {
		if !node.Running() {
			continue
		}
		out, err := node.Run("CLUSTER", "KEYSLOT", key)
		if err == nil {
			slot, err := strconv.Atoi(strings.TrimSpace(out))
			if err == nil {
				return slot
			}
		}
	}
	c.t.Fatalf("no node answers CLUSTER KEYSLOT %s", key)
	return -1
}

// Primary is the node that serves slot as its primary, as the first
// running node that answers says.
func (c *Cluster) Primary(slot int) *Server {
	c.t.Helper()
	for _, from := range c.Nodes {
		if !from.Running() {
			continue
		}
		view, err := c.view(from)
		if err != nil {
			continue
		}
		for _, n := range view {
			if n.is("master") && !n.is("fail") && ownsSlot(n.slots, slot) {
				return c.byID[n.id]
			}
		}
	}
	c.t.Fatalf("no node serves slot %d", slot)
	return nil
}

func ownsSlot(ranges []string, slot int) bool {
	for _, r := range ranges {
		if strings.HasPrefix(r, "[") {
			continue // a slot being migrated
		}
		from, to, ok := strings.Cut(r, "-")
		if !ok {
			to = from
		}
		lo, err1 := strconv.Atoi(from)
		hi, err2 := strconv.Atoi(to)
		if err1 == nil && err2 == nil && lo <= slot && slot <= hi {
			return true
		}
	}
	return false
}

// Replicas are the running nodes that replicate primary, as primary says.
func (c *Cluster) Replicas(primary *Server) []*Server {
	c.t.Helper()
	view, err := c.view(primary)
	if err != nil {
		c.t.Fatalf("CLUSTER NODES on %s: %v", primary.Addr(), err)
	}
	var replicas []*Server
	for _, n := range view {
		if r := c.byID[n.id]; r != nil && r.Running() && n.is("slave") && n.master == c.ids[primary] {
			replicas = append(replicas, r)
		}
	}
	return replicas
}

// Promoted waits until a node other than old that was not a primary
// when it was called says it is one (ROLE), and returns it and when it was
// seen to. ROLE changes the moment the replica takes its primary's slots,
// before it tells the other nodes; it is polled every 2 ms, as nothing
// announces it. Any replica may be the one: Redis Cluster moves a spare
// replica of another primary to a primary whose replicas all failed
// (replica migration).
func (c *Cluster) Promoted(old *Server, within time.Duration) (*Server, time.Time) {
	c.t.Helper()
	var candidates []*Server
	for _, node := range c.Nodes {
		if node == old || !node.Running() {
			continue
		}
		if out, err := node.Run("ROLE"); err != nil || !strings.HasPrefix(out, "master\n") {
			candidates = append(candidates, node)
		}
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, r := range candidates {
			if out, err := r.Run("ROLE"); err == nil && strings.HasPrefix(out, "master\n") {
				return r, time.Now()
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	var views strings.Builder
	for _, r := range candidates {
		out, err := r.Run("CLUSTER", "NODES")
		fmt.Fprintf(&views, "\n%s says (%v):\n%s", r.Addr(), err, out)
	}
	c.t.Fatalf("no replica promoted within %v:%s", within, views.String())
	return nil, time.Time{}
}

// Settle waits until every running node reports cluster_state:ok and lists
// every running node as healthy with the same role and primary as the
// others do, and every running replica is in sync with its primary. A
// killed node restarted with Restart rejoins as a replica of the primary
// that replaced it; Settle returns once it is one.
func (c *Cluster) Settle() {
	c.t.Helper()
	c.poll("the cluster to settle", func() (bool, string) {
		var want map[string]string // running node id -> its primary's id, or "master"
		for _, node := range c.Nodes {
			if !node.Running() {
				continue
			}
			info, err := node.Run("CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false, node.Addr() + ": " + info + errString(err)
			}
			view, err := c.view(node)
			if err != nil {
				return false, node.Addr() + ": " + err.Error()
			}
			roles := map[string]string{}
			for _, other := range c.Nodes {
				if !other.Running() {
					continue
				}
				n, ok := view[c.ids[other]]
				if !ok || n.is("fail") || n.is("fail?") || n.is("handshake") || n.is("noaddr") {
					return false, node.Addr() + " sees " + other.Addr() + " as " + n.flags
				}
				roles[n.id] = "master"
				if n.is("slave") {
					roles[n.id] = n.master
				}
			}
			if want == nil {
				want = roles
			} else if !maps.Equal(want, roles) {
				return false, node.Addr() + " disagrees on roles"
			}
		}
		for id, role := range want {
			if role == "master" {
				continue
			}
			replica := c.byID[id]
			info, err := replica.Run("INFO", "replication")
			if err != nil || !strings.Contains(info, "master_link_status:up") || !strings.Contains(info, "master_sync_in_progress:0") {
				return false, replica.Addr() + " not in sync: " + errString(err)
			}
		}
		return true, ""
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// poll calls check every 20 ms until it reports done, for up to 30 s.
// Nodes gossip their way to agreement and nothing announces it.
func (c *Cluster) poll(what string, check func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, why := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: not after 30s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
