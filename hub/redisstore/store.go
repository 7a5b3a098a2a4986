// Package redisstore is a hub.Store kept in Redis, so that several processes
// (Caddy nodes) serve one hub: channels, messages, clients, sessions and the
// id counter live in Redis, every operation is one Lua script, and each store
// wakes its hub's held reads from one Redis pub/sub subscription.
//
// It works with standalone Redis, Sentinel and Cluster (all keys of a hub
// share a hash tag; Cluster uses sharded pub/sub). Expiry uses Redis TTLs, so
// the store does not implement hub.Sweeper.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

// Store is a hub.Store backed by Redis. Open one per hub and process.
type Store struct {
	client  rueidis.Client
	keys    keys
	timeout time.Duration
	notify  func(hub.Event)
	log     *zap.Logger
	health  health
	// cache answers the reads it can without Redis (cache.go).
	cache *cache

	// publishCmd and subscribeCmd are PUBLISH/SUBSCRIBE, or their sharded
	// forms on Cluster, where plain pub/sub would be copied to every node.
	publishCmd   string
	subscribeCmd string

	// minReplicas and replicaTimeout are Options' (see durable.go); a
	// publish is durable when minReplicas is above 0.
	minReplicas    int
	replicaTimeout time.Duration

	// suspect is told of every call that failed for a reason other than a
	// Redis error, the caller's giving up included: on a Cluster it makes
	// the client look for a new primary (clusterClient).
	suspect func()

	stop      context.CancelFunc
	listening chan struct{} // closed when the subscriber goroutine ends
	switched  chan struct{} // receives when the client moved to a new master
	closeOnce sync.Once
}

// Interface guard.
var _ hub.Store = (*Store)(nil)

// Open connects to Redis, subscribes to the hub's events and returns the
// store once the subscription is confirmed, so that no notification of a
// read made through it can be missed. It fails when Redis cannot be reached
// within the dial timeout and Timeout.
func Open(opts Options, so hub.StoreOptions) (*Store, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	hubName := so.Hub
	if hubName == "" {
		hubName = "default"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ReplicaTimeout <= 0 {
		opts.ReplicaTimeout = DefaultReplicaTimeout
	}
	if opts.MinReplicas > 0 && opts.ReplicaTimeout >= opts.Timeout {
		return nil, fmt.Errorf("the replica timeout (%v) must be under the store's timeout (%v)", opts.ReplicaTimeout, opts.Timeout)
	}
	co := opts.Client
	if co.Dialer.Timeout <= 0 {
		co.Dialer.Timeout = DefaultDialTimeout
	}
	if co.ConnWriteTimeout <= 0 {
		co.ConnWriteTimeout = opts.Timeout
	}
	if co.ClientName == "" {
		co.ClientName = "caddy-comet"
	}
	co.DisableCache = true
	co.RetryDelay = retryDelay
	// One connection per Redis node carries every command and the
	// subscription, and its reader runs from the start. By default rueidis
	// spreads commands at random over up to four connections, and one used
	// a command at a time has no reader: when Redis restarts, nothing
	// notices it is dead until a command is sent on it, which can be after
	// other calls have succeeded on a fresh one, so calls would fail again
	// after the store had recovered. With one connection whose reader sees
	// Redis close it, a call that succeeds proves the connection later calls
	// use, until Redis fails again; so does the subscription's confirmation,
	// which is what makes held reads look again (EventResync).
	co.PipelineMultiplex = -1
	co.AlwaysPipelining = true

	switched := make(chan struct{}, 1)
	keys := newKeys(opts.KeyPrefix, hubName)
	log := opts.Logger.With(zap.String("hub", hubName), zap.String("key_prefix", opts.KeyPrefix))
	client, err := newClient(co, log, switched, keys.id(), opts.Timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to redis at %v: %w", co.InitAddress, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{
		client:         client,
		keys:           keys,
		timeout:        opts.Timeout,
		notify:         so.Notify,
		log:            log,
		health:         health{log: log},
		cache:          newCache(),
		publishCmd:     "PUBLISH",
		subscribeCmd:   "SUBSCRIBE",
		minReplicas:    max(opts.MinReplicas, 0),
		replicaTimeout: opts.ReplicaTimeout,
		stop:           stop,
		listening:      make(chan struct{}),
		switched:       switched,
		suspect:        func() {},
	}
	if s.notify == nil {
		s.notify = func(hub.Event) {}
	}
	if client.Mode() == rueidis.ClientModeCluster {
		s.publishCmd, s.subscribeCmd = "SPUBLISH", "SSUBSCRIBE"
	}
	if cc, ok := client.(*clusterClient); ok {
		s.suspect = cc.suspect
	}

	ready := make(chan struct{})
	var lastErr atomic.Pointer[error]
	go s.listen(ctx, ready, &lastErr)
	wait := time.NewTimer(co.Dialer.Timeout + opts.Timeout)
	defer wait.Stop()
	select {
	case <-ready:
		return s, nil
	case <-wait.C:
		s.Close()
		err := errors.New("no confirmation in time")
		if last := lastErr.Load(); last != nil {
			err = *last
		}
		return nil, fmt.Errorf("subscribing to %s: %w", s.keys.events(), err)
	}
}

// retryDelay keeps rueidis's retries of idempotent commands (exponential,
// at most a second apart) but turns them off for subscriptions: the store
// must see a lost subscription at once to tell its hub (EventResync).
func retryDelay(attempts int, cmd rueidis.Completed, _ error) time.Duration {
	if c := cmd.Commands(); len(c) > 0 && (c[0] == "SUBSCRIBE" || c[0] == "SSUBSCRIBE") {
		return -1
	}
	d := time.Duration(1<<min(attempts, 20)) * time.Microsecond
	return min(time.Second, d+rand.N(d))
}

// Close ends the subscription and closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.client.Close()
		<-s.listening
	})
	return nil
}

// exec runs a script with the store's timeout, and keeps track of whether
// Redis is reachable.
func (s *Store) exec(ctx context.Context, script *rueidis.Lua, keys, args []string) (rueidis.RedisMessage, error) {
	return s.run(ctx, false, script, keys, args)
}

// run is exec. With probe set, the caller's deadline is part of the
// question (answer within it), so running out of it counts as Redis failing;
// otherwise only the store's timeout does: a caller that gave up (a client
// that went away, a maintenance tick that ended) says nothing about Redis.
func (s *Store) run(ctx context.Context, probe bool, script *rueidis.Lua, keys, args []string) (rueidis.RedisMessage, error) {
	within := s.timeout
	if dl, ok := ctx.Deadline(); ok && probe && time.Until(dl) < within {
		within = time.Until(dl)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	msg, err := script.Exec(cctx, s.client, keys, args).ToMessage()
	if err != nil {
		if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
			s.suspect()
		}
		if gaveUp := ctx.Err(); gaveUp == nil || (probe && errors.Is(gaveUp, context.DeadlineExceeded)) {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer from redis within %v: %w", within.Round(time.Millisecond), err)
			}
			s.health.failed(err)
		}
		return msg, err
	}
	s.health.succeeded()
	return msg, nil
}

// Ping implements hub.Store with a script that does nothing (pingScript),
// within the store's timeout or ctx's deadline, whichever comes first. An
// outage it meets is logged once, like any other call's.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.run(ctx, true, pingScript, []string{s.keys.id()}, nil); err != nil {
		return fmt.Errorf("redis ping script: %w", err)
	}
	return nil
}

// millis is a TTL argument: whole milliseconds, rounded up so that a short
// timeout does not become "no expiry"; "0" means no expiry.
func millis(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// CreateChannel implements hub.Store.
func (s *Store) CreateChannel(ctx context.Context, spec hub.ChannelSpec, exp hub.Expiry) error {
	k := s.keys
	msg, err := s.exec(ctx, createChannelScript,
		[]string{k.channel(spec.ID), k.messages(spec.ID), k.readers(spec.ID), k.channels(), k.publishKeys(spec.ID), k.publishKeyTimes(spec.ID)},
		[]string{k.base, spec.ID, boolArg(spec.UseSessions), strconv.Itoa(spec.MaxMessages), millis(exp.InactiveChannelTimeout),
			strconv.Itoa(spec.MaxChannels)})
	if err != nil {
		return fmt.Errorf("redis create-channel script: %w", err)
	}
	switch created, err := msg.AsInt64(); {
	case err != nil:
		return fmt.Errorf("redis create-channel script: %w", err)
	case created == 0:
		return hub.ErrChannelExists
	case created < 0:
		return hub.ErrHubChannelLimit
	}
	return nil
}

// DeleteChannel implements hub.Store.
func (s *Store) DeleteChannel(ctx context.Context, id string) (bool, error) {
	k := s.keys
	msg, err := s.exec(ctx, deleteChannelScript,
		[]string{k.channel(id), k.messages(id), k.readers(id), k.channels(), k.publishKeys(id), k.publishKeyTimes(id)},
		[]string{id, k.events(), s.publishCmd})
	if err != nil {
		return false, fmt.Errorf("redis delete-channel script: %w", err)
	}
	removed, err := msg.AsInt64()
	if err != nil {
		return false, fmt.Errorf("redis delete-channel script: %w", err)
	}
	return removed == 1, nil
}

// Publish implements hub.Store.
func (s *Store) Publish(ctx context.Context, p hub.Publication, now time.Time, exp hub.Expiry) (hub.Published, error) {
	k := s.keys
	ts := now.Unix()
	key := p.IdempotencyKey
	if exp.IdempotencyWindow <= 0 {
		key = ""
	}
	c := p.Channel
	keys := []string{k.channel(c), k.messages(c), k.readers(c), k.id(), k.channels(), k.publishKeys(c), k.publishKeyTimes(c)}
	args := []string{c, string(p.Encoded), strconv.FormatInt(hub.ClockID(now), 10), strconv.FormatInt(ts, 10),
		millis(exp.InactiveChannelTimeout), k.events(), s.publishCmd,
		key, millis(exp.IdempotencyWindow), strconv.Itoa(max(p.MaxIdempotencyKeys, 1)), s.durableArg()}
	var msg rueidis.RedisMessage
	var err error
	if s.minReplicas > 0 {
		msg, err = s.publishDurably(ctx, keys, args)
	} else {
		msg, err = s.exec(ctx, publishScript, keys, args)
	}
	if err != nil {
		return hub.Published{}, fmt.Errorf("redis publish script: %w", err)
	}
	if msg.IsInt64() {
		if code, _ := msg.AsInt64(); code == -2 {
			return hub.Published{}, hub.ErrNoChannel
		}
	}
	reply, err := msg.AsIntSlice()
	if err != nil || len(reply) != 2 {
		return hub.Published{}, fmt.Errorf("redis publish script: unexpected reply %v (%v)", msg, err)
	}
	if s.minReplicas > 0 {
		if err := s.commit(ctx, c, reply[0]); err != nil {
			return hub.Published{}, err
		}
	}
	s.cache.wrote(reply[0])
	if reply[1] == 1 {
		return hub.Published{Message: hub.Message{ID: reply[0]}, Replayed: true}, nil
	}
	return hub.Published{Message: hub.NewMessage(p.Encoded, reply[0], ts)}, nil
}

// CreateClient implements hub.Store.
func (s *Store) CreateClient(ctx context.Context, spec hub.ClientSpec, exp hub.Expiry) error {
	k := s.keys
	msg, err := s.exec(ctx, createClientScript,
		[]string{k.client(spec.ID), k.sessions()},
		[]string{k.base, spec.ID, millis(exp.SessionTimeout), strconv.Itoa(spec.MaxClients)})
	if err != nil {
		return fmt.Errorf("redis register-client script: %w", err)
	}
	switch created, err := msg.AsInt64(); {
	case err != nil:
		return fmt.Errorf("redis register-client script: %w", err)
	case created == 0:
		return hub.ErrClientExists
	case created < 0:
		return hub.ErrHubClientLimit
	}
	return nil
}

// Read implements hub.Store. A read that registered for wake-ups
// (DeferRenewal) is answered from the node's cache when it can be
// (cache.go), and otherwise from Redis, whose answer may seed the cache.
func (s *Store) Read(ctx context.Context, q hub.ReadQuery, exp hub.Expiry) (hub.ReadResult, error) {
	if !s.health.down.Load() {
		if res, ok := s.cache.read(&q, exp); ok {
			return res, nil
		}
	}
	start := s.cache.begin()
	k := s.keys
	keys := make([]string, 0, 5+3*len(q.Channels))
	keys = append(keys, k.id(), k.client(q.ClientID), k.sessions(), k.channels(), k.visible())
	args := make([]string, 0, 7+len(q.Channels))
	args = append(args, k.base, strconv.FormatInt(q.Since, 10), millis(exp.SessionTimeout),
		millis(exp.InactiveChannelTimeout), q.ClientID, strconv.Itoa(q.MaxBytes), s.durableArg())
	for _, c := range q.Channels {
		keys = append(keys, k.channel(c), k.messages(c), k.readers(c))
		args = append(args, c)
	}
	msg, err := s.exec(ctx, readScript, keys, args)
	if err != nil {
		return hub.ReadResult{}, fmt.Errorf("redis read script: %w", err)
	}
	if msg.IsInt64() {
		code, _ := msg.AsInt64()
		switch code {
		case -3:
			return hub.ReadResult{}, hub.ErrUnregisteredClient
		case -2:
			return hub.ReadResult{}, hub.ErrNoValidChannels
		}
		return hub.ReadResult{}, fmt.Errorf("reading: unexpected reply %d", code)
	}
	res, seeds, cut, err := decodeReadReply(msg, q)
	if err != nil {
		return hub.ReadResult{}, fmt.Errorf("redis read script: %w", err)
	}
	res.Cut = cut
	if q.DeferRenewal && !cut && cacheable(exp) {
		s.cache.seed(start, &q, res.Since, seeds)
	}
	return res, nil
}

// decodeReadReply decodes the read script's {last, cut, i, {json,
// score...}, meta, ...}, and returns with the result what the reply tells
// the cache of each channel and whether the limit cut it.
func decodeReadReply(msg rueidis.RedisMessage, q hub.ReadQuery) (hub.ReadResult, []seedChannel, bool, error) {
	arr, err := msg.ToArray()
	if err != nil || len(arr) < 2 || len(arr)%3 != 2 {
		return hub.ReadResult{}, nil, false, fmt.Errorf("unexpected reply: %v", msg)
	}
	last, err := parseID(&arr[0])
	if err != nil {
		return hub.ReadResult{}, nil, false, err
	}
	cut, err := arr[1].AsInt64()
	if err != nil {
		return hub.ReadResult{}, nil, false, fmt.Errorf("unexpected reply: %v", msg)
	}
	res := hub.ReadResult{Since: min(q.Since, last), LastID: last, Channels: make([]hub.ChannelMessages, 0, len(arr)/3)}
	seeds := make([]seedChannel, 0, len(arr)/3)
	for i := 2; i < len(arr); i += 3 {
		idx, err := arr[i].AsInt64()
		if err != nil || idx < 0 || idx >= int64(len(q.Channels)) {
			return hub.ReadResult{}, nil, false, fmt.Errorf("unexpected channel index in reply: %v", arr[i])
		}
		items, err := arr[i+1].ToArray()
		if err != nil || len(items)%2 != 0 {
			return hub.ReadResult{}, nil, false, fmt.Errorf("unexpected messages in reply: %v", arr[i+1])
		}
		cm := hub.ChannelMessages{ID: q.Channels[idx]}
		if len(items) > 0 {
			cm.Messages = make([]hub.Message, 0, len(items)/2)
		}
		for j := 0; j < len(items); j += 2 {
			js, err := items[j].ToString()
			if err != nil {
				return hub.ReadResult{}, nil, false, err
			}
			id, err := parseID(&items[j+1])
			if err != nil {
				return hub.ReadResult{}, nil, false, err
			}
			cm.Messages = append(cm.Messages, hub.Message{ID: id, JSON: []byte(js)})
		}
		res.Channels = append(res.Channels, cm)
		sc, err := decodeMeta(&arr[i+2])
		if err != nil {
			return hub.ReadResult{}, nil, false, fmt.Errorf("unexpected channel meta in reply: %v", arr[i+2])
		}
		sc.id, sc.msgs = cm.ID, cm.Messages
		seeds = append(seeds, sc)
	}
	return res, seeds, cut == 1, nil
}

// decodeMeta decodes a read reply's {head, newest, use_sessions,
// max_messages} of a channel.
func decodeMeta(m *rueidis.RedisMessage) (seedChannel, error) {
	f, err := m.ToArray()
	if err != nil || len(f) != 4 {
		return seedChannel{}, fmt.Errorf("want 4 fields")
	}
	var sc seedChannel
	if sc.head, err = parseID(&f[0]); err != nil {
		return sc, err
	}
	if sc.newest, err = parseID(&f[1]); err != nil {
		return sc, err
	}
	us, err := f[2].ToString()
	if err != nil {
		return sc, err
	}
	maxs, err := f[3].ToString()
	if err != nil {
		return sc, err
	}
	sc.useSessions = us == "1"
	if sc.maxMessages, err = strconv.Atoi(maxs); err != nil {
		return sc, err
	}
	return sc, nil
}

// parseID reads an id that Redis returns as a string: the counter, or a
// sorted-set score, which Redis may print as a float ("1.5e+14") although
// it is a whole number below 2^53.
func parseID(m *rueidis.RedisMessage) (int64, error) {
	s, err := m.ToString()
	if err != nil {
		return 0, err
	}
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		return id, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad message id %q", s)
	}
	return int64(f), nil
}

// touchChunk bounds the ids one touch script handles, so that a node with
// many held reads does not hold Redis in one long script.
const touchChunk = 256

// Touch implements hub.Store. It also makes the renewals the cache deferred
// (ReadQuery.DeferRenewal): the channels and clients of the reads it
// answered since the last Touch, and those clients as readers of those
// channels. Chunks are sent concurrently, so rueidis pipelines them into
// one round trip.
func (s *Store) Touch(ctx context.Context, channels, clients []string, exp hub.Expiry) error {
	pending, pendingClients := s.cache.takePending(channels, exp.SessionTimeout)
	if len(channels) == 0 && len(clients) == 0 && len(pending) == 0 && len(pendingClients) == 0 {
		return nil
	}
	readers := make(map[string][]string, len(pending))
	if len(pending) > 0 {
		held := make(map[string]bool, len(channels))
		for _, ch := range channels {
			held[ch] = true
		}
		for ch, rs := range pending {
			if !held[ch] {
				channels = append(channels, ch)
			}
			for r := range rs {
				readers[ch] = append(readers[ch], r)
			}
		}
	}
	if len(pendingClients) > 0 {
		held := make(map[string]bool, len(clients))
		for _, cl := range clients {
			held[cl] = true
		}
		for cl := range pendingClients {
			if !held[cl] {
				clients = append(clients, cl)
			}
		}
	}
	begun := time.Now()
	ttl, sttl := millis(exp.InactiveChannelTimeout), millis(exp.SessionTimeout)
	var (
		wg                        sync.WaitGroup
		mu                        sync.Mutex
		errs                      []error
		goneChannels, goneClients []string
	)
	allChannels, allClients := channels, clients
	for len(channels) > 0 || len(clients) > 0 {
		// A chunk takes channels with their readers while they fit, then
		// clients; a channel with more readers than a chunk holds goes
		// alone.
		nch, ids := 0, 0
		for nch < len(channels) && (nch == 0 || ids+1+len(readers[channels[nch]]) <= touchChunk) {
			ids += 1 + len(readers[channels[nch]])
			nch++
		}
		ncl := min(len(clients), max(touchChunk-ids, 0))
		chs, cls := channels[:nch], clients[:ncl]
		channels, clients = channels[nch:], clients[ncl:]
		wg.Go(func() {
			gch, gcl, err := s.touch(ctx, chs, readers, cls, ttl, sttl)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			goneChannels, goneClients = append(goneChannels, gch...), append(goneClients, gcl...)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.cache.putBack(pending, pendingClients)
		return fmt.Errorf("renewing held channels and sessions: %w", err)
	}
	s.cache.touched(begun, allChannels, allClients, goneChannels, goneClients)
	return nil
}

func (s *Store) touch(ctx context.Context, channels []string, readers map[string][]string, clients []string, ttl, sttl string) (goneChannels, goneClients []string, err error) {
	k := s.keys
	keys := make([]string, 0, 2+3*len(channels)+len(clients))
	keys = append(keys, k.channels(), k.sessions())
	args := make([]string, 0, 4+2*len(channels)+len(clients))
	args = append(args, ttl, sttl, strconv.Itoa(len(channels)), k.base)
	for _, c := range channels {
		keys = append(keys, k.channel(c), k.messages(c), k.readers(c))
		args = append(args, c, strconv.Itoa(len(readers[c])))
		args = append(args, readers[c]...)
	}
	for _, c := range clients {
		keys = append(keys, k.client(c))
		args = append(args, c)
	}
	msg, err := s.exec(ctx, touchScript, keys, args)
	if err != nil {
		return nil, nil, err
	}
	gone, err := msg.ToArray()
	if err != nil || len(gone) != 2 {
		return nil, nil, fmt.Errorf("redis touch script: unexpected reply %v", msg)
	}
	if goneChannels, err = gone[0].AsStrSlice(); err != nil {
		return nil, nil, fmt.Errorf("redis touch script: %w", err)
	}
	if goneClients, err = gone[1].AsStrSlice(); err != nil {
		return nil, nil, fmt.Errorf("redis touch script: %w", err)
	}
	return goneChannels, goneClients, nil
}

// Status implements hub.Store.
func (s *Store) Status(ctx context.Context) (hub.Status, error) {
	k := s.keys
	msg, err := s.exec(ctx, statusScript, []string{k.channels(), k.sessions()}, []string{k.base, strconv.Itoa(hub.StatusListLimit), strconv.Itoa(hub.StatusReadersPerChannel), strconv.Itoa(hub.StatusReadersLimit)})
	if err != nil {
		return hub.Status{}, fmt.Errorf("listing the hub: %w", err)
	}
	st, err := parseStatus(msg)
	if err != nil {
		return hub.Status{}, fmt.Errorf("listing the hub: %w", err)
	}
	return st, nil
}

// Counts implements hub.Store. Messages are not counted (hub.Counts).
func (s *Store) Counts(ctx context.Context) (hub.Counts, error) {
	k := s.keys
	msg, err := s.exec(ctx, countsScript, []string{k.channels(), k.sessions()}, nil)
	if err != nil {
		return hub.Counts{}, fmt.Errorf("redis counts script: %w", err)
	}
	counts, err := msg.AsIntSlice()
	if err != nil || len(counts) != 2 {
		return hub.Counts{}, fmt.Errorf("redis counts script: unexpected reply %v", msg)
	}
	return hub.Counts{Channels: int(counts[0]), Clients: int(counts[1]), Messages: -1}, nil
}

// parseStatus decodes the status script's reply, sorted by id as the memory
// store sorts it.
func parseStatus(msg rueidis.RedisMessage) (hub.Status, error) {
	st := hub.Status{Channels: []hub.ChannelStatus{}, Clients: []string{}}
	parts, err := msg.ToArray()
	if err != nil || len(parts) != 3 {
		return st, fmt.Errorf("unexpected reply: %v", msg)
	}
	counts, err := parts[2].AsIntSlice()
	if err != nil || len(counts) != 2 {
		return st, fmt.Errorf("unexpected counts in reply: %v", parts[2])
	}
	st.Counts = hub.Counts{Channels: int(counts[0]), Clients: int(counts[1]), Messages: -1}
	chans, err := parts[0].ToArray()
	if err != nil {
		return st, err
	}
	for _, c := range chans {
		f, err := c.ToArray()
		if err != nil || len(f) != 6 {
			return st, fmt.Errorf("unexpected channel in reply: %v", c)
		}
		var cs hub.ChannelStatus
		var us, maxs string
		if cs.ID, err = f[0].ToString(); err != nil {
			return st, err
		}
		if us, err = f[1].ToString(); err != nil {
			return st, err
		}
		if maxs, err = f[2].ToString(); err != nil {
			return st, err
		}
		cs.UseSessions = us == "1"
		if cs.MaxMessages, err = strconv.Atoi(maxs); err != nil {
			return st, fmt.Errorf("bad max_messages %q of channel %q", maxs, cs.ID)
		}
		n, err := f[3].AsInt64()
		if err != nil {
			return st, err
		}
		cs.MessagesCount = int(n)
		readers, err := f[4].AsStrSlice()
		if err != nil {
			return st, err
		}
		cs.Clients = append(make([]string, 0, len(readers)), readers...)
		slices.Sort(cs.Clients)
		if n, err = f[5].AsInt64(); err != nil {
			return st, err
		}
		cs.ClientsCount = int(n)
		st.Channels = append(st.Channels, cs)
	}
	clients, err := parts[1].AsStrSlice()
	if err != nil {
		return st, err
	}
	st.Clients = append(st.Clients, clients...)
	slices.Sort(st.Clients)
	slices.SortFunc(st.Channels, func(a, b hub.ChannelStatus) int { return strings.Compare(a.ID, b.ID) })
	return st, nil
}
