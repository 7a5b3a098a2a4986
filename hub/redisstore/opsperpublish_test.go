package redisstore

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/hub/redisstore/redistest"
)

// The Redis work one publish costs while N readers are held and released by
// it, counted by Redis itself (INFO commandstats, read over a connection of
// its own) rather than by the client: see docs/performance.md, "Redis
// operations per publish".
//
//	go test -count=1 -v -run TestRedisOpsPerPublish ./hub/redisstore/
//
// COMET_OPS_READERS sets the reader counts (default "50,500").

// commandCalls returns Redis's call counts by command since its start, the
// INFO that reads them left out.
func commandCalls(t testing.TB, srv *redistest.Server) map[string]int64 {
	t.Helper()
	out, err := srv.Run("INFO", "commandstats")
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	calls := map[string]int64{}
	for line := range strings.SplitSeq(out, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		calls[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(n, 10, 64)
	}
	return calls
}

// opsCount is what Redis ran: the calls the nodes sent (store operations:
// scripts, and WAIT for durable publishes) and every command, those the
// scripts ran included.
type opsCount struct{ sent, all int64 }

func countSince(before, after map[string]int64) opsCount {
	var c opsCount
	for name, n := range after {
		d := n - before[name]
		c.all += d
		switch name {
		case "evalsha", "eval", "wait", "publish", "spublish":
			// PUBLISH runs inside the scripts; counted once, under all.
			if name != "publish" && name != "spublish" {
				c.sent += d
			}
		}
	}
	return c
}

// quiet waits until Redis has run no command for a few milliseconds: the
// end of the work a publish set off. No event tells that a stream's next
// read has registered and looked, so this watches Redis do it.
func quiet(t testing.TB, srv *redistest.Server) map[string]int64 {
	t.Helper()
	last := commandCalls(t, srv)
	deadline := time.Now().Add(30 * time.Second)
	for stable := 0; stable < 3; {
		time.Sleep(5 * time.Millisecond)
		now := commandCalls(t, srv)
		if countSince(last, now).all == 0 {
			stable++
		} else {
			stable = 0
		}
		last = now
		if time.Now().After(deadline) {
			t.Fatal("redis never went quiet")
		}
	}
	return last
}

// readerKind is how the readers of one case read.
type readerKind int

const (
	anonymous readerKind = iota // long polls with one since: one share key
	sessions                    // long polls, each with its own client_id
	streams                     // event streams (hub.OpenStream), anonymous
)

type opsCase struct {
	name  string
	kind  readerKind
	nodes int
}

var opsCases = []opsCase{
	{"anonymous long polls", anonymous, 1},
	{"session long polls", sessions, 1},
	{"event streams", streams, 1},
	{"anonymous long polls, two nodes", anonymous, 2},
}

// fanOut is n readers of one channel, spread over the nodes of a hub, each
// reading on from the last message it got.
type fanOut struct {
	c         opsCase
	n         int
	nodes     []*hub.Hub
	channel   string
	delivered atomic.Int64
	errs      chan error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// fanOuts numbers the fan-outs, which name their channels and clients by it
// on a Redis they may share.
var fanOuts atomic.Int64

// startFanOut starts the readers and returns once the long polls are held.
func startFanOut(tb testing.TB, srv *redistest.Server, c opsCase, n int) *fanOut {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fanOut{c: c, n: n, nodes: make([]*hub.Hub, c.nodes), errs: make(chan error, n), cancel: cancel}
	tb.Cleanup(f.stop)
	for i := range f.nodes {
		f.nodes[i] = openNode(tb, srv.Addr())
	}
	f.channel = fmt.Sprintf("fan-%d", fanOuts.Add(1))
	if err := f.nodes[0].RegisterChannel(ctx, f.channel, false, 100); err != nil {
		tb.Fatal(err)
	}
	first, err := f.nodes[0].Publish(ctx, f.channel, "start")
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		h := f.nodes[i%len(f.nodes)]
		req := hub.ReadRequest{Channels: f.channel, Since: first.ID}
		if c.kind == sessions {
			req.ClientID, req.HasClientID = fmt.Sprintf("reader-%s-%d", f.channel, i), true
			if err := h.RegisterClient(ctx, req.ClientID); err != nil {
				tb.Fatal(err)
			}
		}
		if c.kind == streams {
			s, err := h.OpenStream("")
			if err != nil {
				tb.Fatal(err)
			}
			req.Stream = s
		}
		f.wg.Go(func() {
			if req.Stream != nil {
				defer req.Stream.Close()
			}
			var reply hub.Reply
			for ctx.Err() == nil {
				if err := h.ReadInto(ctx, &req, nil, &reply); err != nil {
					f.errs <- err
					return
				}
				if reply.HasMessages() {
					req.Since = reply.LastID
					f.delivered.Add(int64(len(reply.Channels[0].Messages)))
				}
			}
		})
	}
	f.waitFor(tb, "readers held", f.held)
	return f
}

func (f *fanOut) stop() {
	f.cancel()
	f.wg.Wait()
}

// held reports whether every long poll is held; a stream counts as held
// whether it waits or not, so for streams it is always true.
func (f *fanOut) held() bool {
	if f.c.kind == streams {
		return true
	}
	total := 0
	for _, h := range f.nodes {
		total += h.Held()
	}
	return total == f.n
}

func (f *fanOut) waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-f.errs:
			tb.Fatalf("a reader failed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// publish publishes the p-th message on the first node and returns once
// every reader has it and every long poll is held again.
func (f *fanOut) publish(tb testing.TB, p int) {
	tb.Helper()
	if _, err := f.nodes[0].Publish(context.Background(), f.channel, fmt.Sprint("m", p)); err != nil {
		tb.Fatal(err)
	}
	f.waitFor(tb, "delivered to every reader", func() bool { return f.delivered.Load() == int64(p*f.n) })
	f.waitFor(tb, "readers held again", f.held)
}

// measureOpsPerPublish publishes publishes messages to n readers, one at a
// time, each once every reader has the one before and Redis is quiet again,
// and returns what Redis ran per publish.
func measureOpsPerPublish(t *testing.T, srv *redistest.Server, c opsCase, n, publishes int) (perPublish [2]float64) {
	f := startFanOut(t, srv, c, n)
	before := quiet(t, srv)
	for p := 1; p <= publishes; p++ {
		f.publish(t, p)
		quiet(t, srv)
	}
	ops := countSince(before, commandCalls(t, srv))
	return [2]float64{float64(ops.sent) / float64(publishes), float64(ops.all) / float64(publishes)}
}

// BenchmarkFanOut500: one publish fanned out to 500 readers of one channel
// held on one node, long polls and event streams; an op is a publish and
// its deliveries to all 500 (and, for long polls, their next reads held).
//
//	go test -run '^$' -bench FanOut500 -benchmem ./hub/redisstore/
func BenchmarkFanOut500(b *testing.B) {
	srv := redistest.Start(b)
	for _, c := range []opsCase{{"long_poll", anonymous, 1}, {"stream", streams, 1}} {
		b.Run(c.name, func(b *testing.B) {
			f := startFanOut(b, srv, c, 500)
			// Streams' first reads may still be running.
			before := quiet(b, srv)
			b.ReportAllocs()
			b.ResetTimer()
			for p := 1; p <= b.N; p++ {
				f.publish(b, p)
			}
			b.StopTimer()
			ops := countSince(before, commandCalls(b, srv))
			b.ReportMetric(float64(ops.sent)/float64(b.N), "redis-calls/op")
		})
	}
}

func opsReaderCounts(t *testing.T) []int {
	spec := os.Getenv("COMET_OPS_READERS")
	if spec == "" {
		spec = "50,500"
	}
	var out []int
	for f := range strings.SplitSeq(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("COMET_OPS_READERS %q: want reader counts separated by commas", spec)
		}
		out = append(out, n)
	}
	return out
}

// TestRedisOpsPerPublish measures the store operations one publish costs
// with N readers held on it, for each kind of reader, logs them, and fails
// when they grow with the readers.
func TestRedisOpsPerPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement skipped in -short mode")
	}
	srv := startRedis(t)
	const publishes = 20
	for _, c := range opsCases {
		for _, n := range opsReaderCounts(t) {
			t.Run(fmt.Sprintf("%s/%d", strings.ReplaceAll(c.name, " ", "_"), n), func(t *testing.T) {
				got := measureOpsPerPublish(t, srv, c, n, publishes)
				t.Logf("%-32s N=%-4d store operations per publish %7.1f, redis commands per publish %8.1f", c.name, n, got[0], got[1])
				// The publish itself, and a maintenance touch per node
				// that may fall within the run: nothing per reader.
				if limit := 1 + float64(c.nodes); got[0] > limit {
					t.Errorf("%.1f store operations per publish to %d readers, want at most %.0f", got[0], n, limit)
				}
			})
		}
	}
}

// openNode is node for benchmarks too.
func openNode(tb testing.TB, addr string) *hub.Hub {
	tb.Helper()
	h, err := hub.New("shared", hub.Config{HTTPTimeout: 20 * time.Second}, func(so hub.StoreOptions) (hub.Store, error) {
		return Open(Options{Client: rueidis.ClientOption{InitAddress: []string{addr}}, Timeout: time.Second}, so)
	})
	if err != nil {
		tb.Fatalf("starting a node: %v", err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	return h
}
