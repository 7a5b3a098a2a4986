package redisstore

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
)

// newSentinelClient connects to the master co.Sentinel.MasterSet names
// and watches every sentinel in co.InitAddress for a switch.
func newSentinelClient(co rueidis.ClientOption, log *zap.Logger, switched chan<- struct{}) (rueidis.Client, error) {
	if co.Sentinel.Dialer.Timeout <= 0 {
		co.Sentinel.Dialer.Timeout = co.Dialer.Timeout
	}
	first, err := rueidis.NewClient(co)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &sentinelClient{opt: co, log: log, switched: switched, stop: stop}
	c.swap(first)
	for _, addr := range co.InitAddress {
		c.watchers.Go(func() { c.watch(ctx, addr) })
	}
	return c, nil
}

// sentinelClient is a rueidis Sentinel client that every sentinel can move
// to a new master. rueidis follows +switch-master on one sentinel only, so
// a client whose sentinel hangs with the master (one host holding both, the
// usual layout) stays on the old master: the switch that the other
// sentinels announce never reaches it, and a sentinel that accepts
// connections but does not answer is not left in time. This one also
// subscribes to +switch-master on every sentinel in InitAddress, and on the
// first announcement of a master it is not using, replaces its rueidis
// client by one that asks the announcing sentinel first.
type sentinelClient struct {
	opt      rueidis.ClientOption
	log      *zap.Logger
	switched chan<- struct{}
	swappable

	mu       sync.Mutex // serialises switches
	closed   bool
	stop     context.CancelFunc
	watchers sync.WaitGroup
}

// Interface guard.
var _ rueidis.Client = (*sentinelClient)(nil)

// watch holds a subscription to +switch-master on the sentinel at addr,
// subscribing again (backing off up to a second) whenever it is lost,
// until ctx ends.
func (c *sentinelClient) watch(ctx context.Context, addr string) {
	const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		wc, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:       []string{addr},
			ForceSingleClient: true,
			Username:          c.opt.Sentinel.Username,
			Password:          c.opt.Sentinel.Password,
			ClientName:        c.opt.Sentinel.ClientName,
			Dialer:            c.opt.Sentinel.Dialer,
			TLSConfig:         c.opt.Sentinel.TLSConfig,
			ConnWriteTimeout:  c.opt.ConnWriteTimeout,
			DisableCache:      true,
			DisableRetry:      true,
		})
		var confirmed atomic.Bool
		if err == nil {
			hctx := rueidis.WithOnSubscriptionHook(ctx, func(rueidis.PubSubSubscription) { confirmed.Store(true) })
			cmd := wc.B().Subscribe().Channel("+switch-master").Build()
			err = wc.Receive(hctx, cmd, func(m rueidis.PubSubMessage) { c.onSwitch(addr, m.Message) })
			wc.Close()
		}
		if confirmed.Load() {
			backoff = minBackoff // it worked for a while: back off afresh
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Debug("sentinel subscription lost", zap.String("sentinel", addr), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// onSwitch handles "<name> <old ip> <old port> <new ip> <new port>" from
// the sentinel at from.
func (c *sentinelClient) onSwitch(from, msg string) {
	f := strings.Fields(msg)
	if len(f) != 5 || f[0] != c.opt.Sentinel.MasterSet {
		return
	}
	to := net.JoinHostPort(f[3], f[4])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	old := c.client()
	if _, ok := old.Nodes()[to]; ok {
		c.notifySwitched() // rueidis followed by itself
		return
	}
	opt := c.opt
	opt.InitAddress = make([]string, 0, len(c.opt.InitAddress))
	opt.InitAddress = append(opt.InitAddress, from)
	for _, a := range c.opt.InitAddress {
		if a != from {
			opt.InitAddress = append(opt.InitAddress, a)
		}
	}
	next, err := rueidis.NewClient(opt)
	if err != nil {
		c.log.Warn("redis failover: cannot reach the new master yet",
			zap.String("master", to), zap.String("sentinel", from), zap.Error(err))
		return
	}
	c.swap(next).Close()
	c.log.Info("redis failover: following the new master",
		zap.String("from", f[1]+":"+f[2]), zap.String("master", to), zap.String("sentinel", from))
	c.notifySwitched()
}

func (c *sentinelClient) notifySwitched() { notify(c.switched) }

// Close stops watching the sentinels and closes the connections.
func (c *sentinelClient) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.watchers.Wait()
	c.client().Close()
}
