package redistest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the nodes' host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// StartCluster starts n masters, splits the 16384 slots between them, joins
// them and returns once every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range n {
		c.Nodes = append(c.Nodes, Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"))
	}
	const slots = 16384
	for i, node := range c.Nodes {
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
	// Nodes gossip their way to agreement; nothing announces it, so poll.
	deadline := time.Now().Add(20 * time.Second)
	for _, node := range c.Nodes {
		for {
			info, err := node.Run("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok after 20s: %s %v", info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}
