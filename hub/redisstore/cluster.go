package redisstore

import (
	"context"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// Polling the cluster while the store's calls fail (see clusterClient).
const (
	// clusterPollInterval is how often the nodes are asked who serves the
	// hub's slot.
	clusterPollInterval = 25 * time.Millisecond
	// clusterPollTimeout bounds one round of questions, so that a node
	// that hangs does not hold up the answers of the others for longer.
	clusterPollTimeout = 200 * time.Millisecond
)

// clusterClient is a rueidis Cluster client that follows a failover of the
// hub's slot as soon as the replica is promoted. rueidis learns the new
// primary only in a refresh of its slot map, which it starts at a random
// moment up to a second after a connection closed or a call failed, one at
// a time: the refreshes that run before the promotion find the old map, and
// the first after it may come most of a second later (docs/scaling.md,
// "When the Redis primary fails over"). So while the store's calls fail
// (suspect), this one asks every node every clusterPollInterval whether it
// is the primary of the hub's slot, and once a node says so with a newer
// configuration epoch than the primary it knew, replaces its rueidis client
// by one that takes the slot map from that node. The replaced client is
// closed once the calls started on it have ended (after grace).
type clusterClient struct {
	swappable
	opt      rueidis.ClientOption
	log      *zap.Logger
	switched chan<- struct{}
	// probe is a key of the hub's slot.
	probe string
	slot  string
	grace time.Duration

	suspects chan struct{}
	stop     context.CancelFunc
	watching sync.WaitGroup
	// owner is the primary of the slot the current client was made from,
	// as far as known; only the watching goroutine uses it.
	owner slotClaim

	mu      sync.Mutex
	closed  bool
	retired []*time.Timer
	old     []rueidis.Client
	// asked are the nodes this client asks who serves the slot, by
	// address: InitAddress and every node their CLUSTER NODES lists
	// (rueidis knows only the nodes CLUSTER SLOTS lists, which leaves out
	// replicas that have not yet reported a replication offset). A nil
	// entry is a node being connected to.
	asked   map[string]rueidis.Client
	dialing map[string]bool
}

// slotClaim is a node that says it is the primary of the hub's slot, and
// its configuration epoch: when two nodes say so, as a primary that hung
// does when it wakes after its replica took over, the newer epoch is the
// cluster's choice.
type slotClaim struct {
	addr  string
	epoch int64
}

// Interface guard.
var _ rueidis.Client = (*clusterClient)(nil)

func newClusterClient(first rueidis.Client, co rueidis.ClientOption, log *zap.Logger, switched chan<- struct{}, probe string, grace time.Duration) *clusterClient {
	ctx, stop := context.WithCancel(context.Background())
	c := &clusterClient{
		opt: co, log: log, switched: switched, probe: probe, grace: grace,
		suspects: make(chan struct{}, 1), stop: stop, owner: slotClaim{epoch: -1},
		asked: map[string]rueidis.Client{}, dialing: map[string]bool{},
	}
	for _, addr := range co.InitAddress {
		c.asked[addr] = nil
	}
	c.swap(first)
	cmd := first.B().Get().Key(probe).Build()
	c.slot = strconv.Itoa(int(cmd.Slot()))
	c.watching.Go(func() { c.watch(ctx) })
	return c
}

// suspect tells the client that a call failed for a reason other than a
// Redis error: the slot's primary may have failed.
func (c *clusterClient) suspect() { notify(c.suspects) }

func (c *clusterClient) watch(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, clusterPollTimeout)
	if claim, ok := c.newerClaim(pctx); ok {
		c.owner = claim
	}
	cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.suspects:
		}
		c.follow(ctx)
	}
}

// follow polls until the current client's call to the slot works, moving
// to a newer primary as soon as one claims the slot.
func (c *clusterClient) follow(ctx context.Context) {
	tick := time.NewTicker(clusterPollInterval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, clusterPollTimeout)
		client := c.client()
		probed := make(chan error, 1)
		go func() { probed <- client.Do(pctx, client.B().Exists().Key(c.probe).Build()).Error() }()
		claim, newer := c.newerClaim(pctx)
		if newer {
			c.moveTo(claim)
		} else {
			// A call that must first connect to a node that hangs may
			// outlast pctx: rueidis does not give up a dial for it.
			select {
			case err := <-probed:
				if err == nil {
					cancel()
					return
				}
			case <-pctx.Done():
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// newerClaim asks every node it knows of whether it is the primary of the
// slot, and returns the first that is, with an epoch newer than owner's,
// or false when none says so within ctx.
func (c *clusterClient) newerClaim(ctx context.Context) (slotClaim, bool) {
	known := c.owner.epoch
	c.mu.Lock()
	addrs := slices.Collect(maps.Keys(c.asked))
	c.mu.Unlock()
	claims := make(chan slotClaim, len(addrs))
	var asking sync.WaitGroup
	for _, addr := range addrs {
		asking.Go(func() {
			node := c.node(addr)
			if node == nil {
				return
			}
			out, err := node.Do(ctx, node.B().ClusterNodes().Build()).ToString()
			if err != nil {
				return
			}
			epoch, ok, others := readClusterNodes(out, c.slot)
			c.mu.Lock()
			for _, a := range others {
				if _, seen := c.asked[a]; !seen && !c.closed {
					c.asked[a] = nil
				}
			}
			c.mu.Unlock()
			if ok && epoch > known {
				claims <- slotClaim{addr: addr, epoch: epoch}
			}
		})
	}
	go func() {
		asking.Wait()
		close(claims)
	}()
	select {
	case claim, ok := <-claims:
		return claim, ok
	case <-ctx.Done():
		return slotClaim{}, false
	}
}

// node is the client of the node at addr, or nil while it is being
// connected to: connecting to a node that hangs takes up to the dial
// timeout, which must not hold up the questions to the others.
func (c *clusterClient) node(addr string) rueidis.Client {
	c.mu.Lock()
	node, dialing := c.asked[addr], c.dialing[addr]
	if node != nil || dialing || c.closed {
		c.mu.Unlock()
		return node
	}
	c.dialing[addr] = true
	c.mu.Unlock()
	opt := c.opt
	opt.InitAddress, opt.ForceSingleClient, opt.DisableRetry = []string{addr}, true, true
	node, err := rueidis.NewClient(opt)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.dialing, addr)
	if err != nil {
		return nil
	}
	if c.closed {
		node.Close()
		return nil
	}
	c.asked[addr] = node
	return node
}

// readClusterNodes reads CLUSTER NODES as a node answered it: the line
// that describes that node ("myself") gives its configuration epoch, and
// whether it is a primary that serves slot; the other lines, the addresses
// of the other nodes.
func readClusterNodes(clusterNodes, slot string) (epoch int64, serves bool, others []string) {
	want, _ := strconv.Atoi(slot)
	for line := range strings.Lines(clusterNodes) {
		// <id> <ip:port@cport[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slots>...
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		flags := strings.Split(f[2], ",")
		if !slices.Contains(flags, "myself") {
			addr, _, _ := strings.Cut(f[1], "@")
			if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !slices.Contains(flags, "noaddr") {
				others = append(others, addr)
			}
			continue
		}
		if !slices.Contains(flags, "master") {
			continue
		}
		e, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			continue
		}
		for _, r := range f[8:] {
			from, to, found := strings.Cut(r, "-")
			if !found {
				to = from
			}
			lo, err1 := strconv.Atoi(from)
			hi, err2 := strconv.Atoi(to)
			if err1 == nil && err2 == nil && lo <= want && want <= hi {
				epoch, serves = e, true
			}
		}
	}
	return epoch, serves, others
}

// moveTo replaces the current client by one that takes the slot map from
// claim's node, which knows it serves the slot even before the other nodes
// do, and retires the old one.
func (c *clusterClient) moveTo(claim slotClaim) {
	opt := c.opt
	opt.InitAddress = []string{claim.addr}
	next, err := rueidis.NewClient(opt)
	if err != nil {
		c.log.Warn("redis cluster failover: cannot reach the new primary yet",
			zap.String("primary", claim.addr), zap.Error(err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		next.Close()
		return
	}
	old := c.swap(next)
	c.old = append(c.old, old)
	c.retired = append(c.retired, time.AfterFunc(c.grace, old.Close))
	c.log.Info("redis cluster failover: following the new primary of the hub's slot",
		zap.String("from", c.owner.addr), zap.String("primary", claim.addr), zap.String("slot", c.slot))
	c.owner = claim
	notify(c.switched)
}

// Close stops watching the cluster and closes the connections.
func (c *clusterClient) Close() {
	c.stop()
	c.watching.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for i, t := range c.retired {
		if t.Stop() {
			c.old[i].Close()
		}
	}
	for _, node := range c.asked {
		if node != nil {
			node.Close()
		}
	}
	c.client().Close()
}
