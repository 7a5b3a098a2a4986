// Command comet-bench loads a caddy-comet deployment (or any server that
// speaks the Simple-Comet-Server API) and reports how it holds up.
//
//	comet-bench [fanout] [flags]   held long-poll readers, a publisher, loss/latency/memory
//	comet-bench catchup [flags]    many clients repeating a read that returns at once
//
// Run "comet-bench fanout -h" or "comet-bench catchup -h" for the flags.
// It refuses targets that are not loopback unless given -allow-remote.
//
// Exit status: 0 when the run finished and every message was published and
// reached every reader of its channel once and in order; 1 for bad flags or
// a failed setup; 2 otherwise (publishes failed, messages lost, duplicated
// or reordered, or the drain timed out).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `comet-bench loads a caddy-comet server (or nginx's Nchan or Centrifugo, to compare) and reports how it holds up.

Usage:
  comet-bench [fanout] [flags]   held long-poll readers and a publisher: delivered, lost,
                                 duplicated, publish-to-receipt latency, reads/s, server memory
  comet-bench catchup [flags]    clients repeating a read that returns at once (since=0 on a
                                 channel that retains -messages messages): requests/s, latency

Targets that are not loopback are refused unless -allow-remote is given.
Exit status: 0 ok, 1 bad flags or failed setup, 2 publishes failed or messages were lost,
duplicated or reordered.
`

// run is the command line: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	mode := "fanout"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mode, args = args[0], args[1:]
	}
	limit, limitErr := raiseFileLimit()
	switch mode {
	case "fanout":
		return runFanoutCmd(ctx, args, stdout, stderr, limit, limitErr)
	case "catchup":
		return runCatchupCmd(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usageHead)
		return 0
	}
	fmt.Fprintf(stderr, "comet-bench: unknown mode %q\n\n%s", mode, usageHead)
	return 1
}

// raiseFileLimit raises the soft open-file limit to the hard one (every held
// read is a connection) and returns the limit in force.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if l.Cur < l.Max {
		want := l
		want.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return l.Cur, fmt.Errorf("raising the open-file limit from %d to %d: %w", l.Cur, l.Max, err)
		}
		l = want
	}
	return l.Cur, nil
}

// commonFlags are the flags both modes share.
type commonFlags struct {
	targets        targetConfig
	jsonOut, quiet bool
	cpuProfile     string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.targets.Target, "target", "http://127.0.0.1:4080",
		"base `URL` of the comet API (reads go to <URL>/channels/<ids>.json)")
	fs.StringVar(&c.targets.PublishTarget, "publish-target", "",
		"base `URL` for registering channels, publishing and status, when that route is separate (default -target)")
	fs.BoolVar(&c.targets.AllowRemote, "allow-remote", false, "allow targets that are not loopback addresses")
	fs.BoolVar(&c.targets.Insecure, "insecure", false, "do not verify TLS certificates (a local Caddy's internal CA)")
	fs.StringVar(&c.targets.PublishAuth, "publish-auth", "", "`user:password` for basic auth on the publish target")
	fs.Func("publish-header", "`Name: value` header for publish-target requests (repeatable)", func(s string) error {
		if _, _, err := parseHeader(s); err != nil {
			return err
		}
		c.targets.PublishHeaders = append(c.targets.PublishHeaders, s)
		return nil
	})
	fs.BoolVar(&c.jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile to `file` (to see what the load itself costs)")
}

// startCPUProfile starts the -cpuprofile, if asked; stop ends it.
func (c *commonFlags) startCPUProfile() (stop func(), err error) {
	if c.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nFlags of %s:\n", synopsis, name)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 1, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "comet-bench %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 1, false
	}
	return 0, true
}

const fanoutSynopsis = `comet-bench fanout: hold -readers long-poll reads over -channels channels, publish -messages
messages at -rate per second, and report deliveries, loss, duplicates, latency from publish to
receipt, reads/s, and (with -pid) the server's memory per held read.

Reader i reads -channels-per-read consecutive channels starting at channel i mod -channels, in one
request (ids joined by '|'). Message n goes to channel n mod -channels. Readers start after a
marker message, so they see exactly the messages of this run. The run is bounded: -setup-timeout
to hold the readers, -duration for publishing, -drain for the last deliveries.

-transport sse reads Server-Sent Events instead (comet's /channels/IDS.sse), one stream per reader.
-api nchan loads nginx's Nchan module the same way, for comparison: publishes to
<publish-target>/pub?id=CH, readers on <target>/sub?id=CH (long-poll with If-Modified-Since and
If-None-Match, or EventSource with Last-Event-ID), one channel per reader, a start marker on each
channel. -api centrifugo loads Centrifugo's unidirectional SSE (uni_sse, -transport sse): readers
subscribed by their HS256 connection token's "channels" claim, several channels in one connection,
recovering from each channel's start marker; publishes to <publish-target>/api/publish.
scripts/bench-peers.sh runs them all side by side, with the least hub Caddy allows.

Example (the issue's fan-out load):
  comet-bench fanout -readers 5000 -channels 10 -rate 20 -messages 200 -status -pid $(pgrep -f 'caddy run')
`

func runFanoutCmd(ctx context.Context, args []string, stdout, stderr io.Writer, limit uint64, limitErr error) int {
	var common commonFlags
	cfg := fanoutConfig{ProgressEvery: time.Second, FileLimit: limit}
	fs := newFlagSet("fanout", fanoutSynopsis, stderr)
	common.register(fs)
	fs.StringVar(&cfg.Prefix, "prefix", "bench", "channel ids are `PREFIX`-0, PREFIX-1, ...")
	fs.IntVar(&cfg.Channels, "channels", 10, "number of channels")
	fs.IntVar(&cfg.Readers, "readers", 1000, "number of held long-poll readers (each one connection)")
	fs.IntVar(&cfg.PerRead, "channels-per-read", 1, "channels each reader reads in one request")
	fs.IntVar(&cfg.Messages, "messages", 200, "messages to publish (after the warm-up)")
	fs.Float64Var(&cfg.Rate, "rate", 20, "messages published per second")
	fs.IntVar(&cfg.Size, "size", 100, "content length of each message in `bytes` (at least the ~50-byte header)")
	fs.IntVar(&cfg.Publishers, "publishers", 1, "publish requests in flight at once (raise for rates the server cannot take one by one)")
	fs.IntVar(&cfg.MaxMessages, "max-messages", 0, "max_messages to register the channels with (0: the server's default)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "publish at the rate this long before the measured messages (checked, not timed)")
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "cap on the publishing phase, warm-up included")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for deliveries after the last publish")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", time.Minute, "cap on connecting the readers and seeing them held")
	fs.BoolVar(&cfg.UseStatus, "status", false, "wait until /status.json (publish target) shows every reader held; needs enable_status")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "without -status: wait this long after every reader's request went out")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", 2*time.Minute, "client timeout of one read; must exceed the server's http_timeout")
	fs.Func("pid", "the server's process `id`s, comma-separated (nginx: master and workers, summed): report its RSS\n"+
		"(/proc/PID/status) before and with the readers held (start the server afresh for memory figures:\n"+
		"a Go server keeps the memory an earlier run freed), and its CPU time (/proc/PID/stat) per delivery\n"+
		"from the first publish to the end of the drain", func(s string) error {
		pids, err := parsePIDs(s)
		if err != nil {
			return err
		}
		cfg.PID, cfg.OtherPIDs = pids[0], pids[1:]
		return nil
	})
	fs.StringVar(&cfg.API, "api", apiComet, "the server's API: comet; nchan (nginx's Nchan module: publisher at <publish-target>/pub,\n"+
		"subscriber at <target>/sub, ?id=CHANNEL; with -status, nchan_stub_status at <publish-target>/nchan_status); or\n"+
		"centrifugo (with -transport sse: its uni_sse at <target>/connection/uni_sse, publishing to\n"+
		"<publish-target>/api/publish; -status counts the readers' connect pushes)")
	fs.StringVar(&cfg.TokenSecret, "centrifugo-token-secret", "", "-api centrifugo: Centrifugo's client.token.hmac_secret_key, to sign the readers' HS256 tokens")
	fs.StringVar(&cfg.APIKey, "centrifugo-api-key", "", "-api centrifugo: Centrifugo's http_api.key, sent as X-API-Key to publish")
	fs.StringVar(&cfg.Transport, "transport", transportLongPoll, "how readers read: longpoll, or sse (Server-Sent Events: comet's /channels/IDS.sse,\n"+
		"Nchan's EventSource on /sub)")
	fs.StringVar(&cfg.Expvar, "expvar", "", "`URL` of the server's Go memstats, e.g. Caddy's admin http://localhost:2019/debug/vars:\n"+
		"report heap and goroutine stacks per held read beside RSS")
	fs.StringVar(&cfg.Client, "client", "lean", "readers' HTTP client: lean (one goroutine and connection each, least CPU) or net/http")
	fs.IntVar(&cfg.Connections, "connections", 0, "with -client net/http: cap on the readers' connections (0: one per reader; fewer makes reads queue)")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 256, "connections being opened at once (0: no cap); keeps the accept backlog from overflowing")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg.targetConfig = common.targets
	if common.quiet {
		cfg.ProgressEvery = 0
	}
	if limitErr != nil && !common.quiet {
		fmt.Fprintf(stderr, "comet-bench: %v\n", limitErr)
	}

	rep, ok := runMode(&common, "fanout", stdout, stderr, func() (*fanoutReport, error) {
		return runFanout(ctx, cfg, stderr)
	}, printFanout)
	switch {
	case !ok:
		return 1
	case !rep.ok():
		return 2
	}
	return 0
}

const catchupSynopsis = `comet-bench catchup: register -channel to retain exactly -messages messages, fill it, then have
-connections clients GET /channels/<channel>.json?since=0 back to back for -duration (each reply
returns at once with the messages), and report requests/s and latency. It also prints the wrk
command for the same URL and a Caddyfile route that serves the same body with respond; give that
route's URL as -compare to load it the same way and print the ratio.
`

func runCatchupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var common commonFlags
	cfg := catchupConfig{ProgressEvery: time.Second}
	fs := newFlagSet("catchup", catchupSynopsis, stderr)
	common.register(fs)
	fs.StringVar(&cfg.Channel, "channel", "bench-catchup", "the channel read")
	fs.IntVar(&cfg.Messages, "messages", 5, "messages the channel retains and each read returns")
	fs.IntVar(&cfg.Size, "size", 100, "content length of each message in `bytes`")
	fs.IntVar(&cfg.Connections, "connections", 50, "concurrent clients, one connection each")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to load each URL")
	fs.StringVar(&cfg.Compare, "compare", "", "a `URL` to load the same way afterwards (a static respond of the same body)")
	fs.IntVar(&cfg.WrkThreads, "wrk-threads", 2, "-t of the printed wrk command")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg.targetConfig = common.targets
	if common.quiet {
		cfg.ProgressEvery = 0
	}
	if _, ok := runMode(&common, "catchup", stdout, stderr, func() (*catchupReport, error) {
		return runCatchup(ctx, cfg, stderr)
	}, printCatchup); !ok {
		return 1
	}
	return 0
}

// runMode runs one mode's load under -cpuprofile and prints its report, as
// JSON with -json. An error goes to stderr, prefixed with the mode, and ok
// is false.
func runMode[R any](common *commonFlags, mode string, stdout, stderr io.Writer,
	load func() (R, error), printText func(io.Writer, R)) (rep R, ok bool) {
	stopProfile, err := common.startCPUProfile()
	if err == nil {
		rep, err = load()
		stopProfile()
	}
	if err != nil {
		fmt.Fprintf(stderr, "comet-bench %s: %v\n", mode, err)
		return rep, false
	}
	if common.jsonOut {
		writeJSON(stdout, rep)
	} else {
		printText(stdout, rep)
	}
	return rep, true
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func printFanout(w io.Writer, r *fanoutReport) {
	fmt.Fprintf(w, "comet-bench fanout: %d readers (%d channel(s) per read) over %d channels, %s, run %s\n",
		r.Readers, r.ChannelsPerRead, r.Channels, r.Target, r.RunID)
	fmt.Fprintf(w, "  readers:     -api %s -transport %s -client %s\n", r.API, r.Transport, r.Client)
	if r.Interrupted {
		fmt.Fprintln(w, "  INTERRUPTED: the figures cover the run up to the interrupt")
	}
	fmt.Fprintf(w, "  held:        %s (setup %.1fs)\n", r.HeldCheck, r.SetupSeconds)
	fmt.Fprintf(w, "  published:   %d of %d acknowledged in %.1fs = %.1f/s (asked %g/s); %d warm-up\n",
		r.Published, r.MessagesRequested+r.WarmupMessages, r.PublishSeconds, r.AchievedRate, r.PublishRate, r.WarmupMessages)
	state := "complete"
	if !r.Complete {
		state = fmt.Sprintf("INCOMPLETE after %.1fs drain", r.DrainSeconds)
	}
	fmt.Fprintf(w, "  deliveries:  expected %d, delivered %d, lost %d, duplicated %d, reordered %d, unacknowledged %d (%s)\n",
		r.Expected, r.Delivered, r.Lost, r.Duplicated, r.Reordered, r.Unacknowledged, state)
	l := r.Latency
	fmt.Fprintf(w, "  latency:     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (%d timed deliveries, publish send to receipt)\n",
		l.P50, l.P90, l.P99, l.Max, l.Count)
	fmt.Fprintf(w, "  reads:       %d in %.1fs = %.0f/s\n", r.Reads, r.PublishSeconds+r.DrainSeconds, r.ReadsPerSecond)
	fmt.Fprintf(w, "  errors:      %s\n", formatErrors(r.Errors))
	if r.LastError != "" {
		fmt.Fprintf(w, "  last publish error: %s\n", r.LastError)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(w, "  foreign:     %d messages on the channels were not from this run\n", r.Foreign)
	}
	if m := r.Memory; m != nil {
		end := fmt.Sprintf("end %.1f MiB, peak %.1f MiB", mib(m.EndKiB), mib(m.PeakKiB))
		if m.EndError != "" {
			end = "end unreadable: " + m.EndError
		}
		pids := strconv.Itoa(m.PID)
		for _, p := range m.OtherPIDs {
			pids += "+" + strconv.Itoa(p)
		}
		fmt.Fprintf(w, "  server RSS:  before %.1f MiB, readers held %.1f MiB, %s (pid %s)\n",
			mib(m.BeforeKiB), mib(m.HeldKiB), end, pids)
		fmt.Fprintf(w, "  per held read: %.1f KiB (RSS growth while the readers connected, over -readers; only meaningful\n"+
			"                 on a freshly started server: a Go server keeps memory it freed for reuse)\n", m.PerHeldReadKiB)
	}
	if c := r.CPU; c != nil {
		if c.Error != "" {
			fmt.Fprintf(w, "  server CPU:  unreadable: %s\n", c.Error)
		} else {
			fmt.Fprintf(w, "  server CPU:  %.2f s from the first publish to the end of the drain = %.1f us per delivery (%d)\n",
				c.Seconds, c.PerDeliveryUS, c.Deliveries)
		}
	}
	if rt := r.Runtime; rt != nil {
		fmt.Fprintf(w, "  server Go:   heap in use %.1f -> %.1f MiB, stacks %.1f -> %.1f MiB; per held read: heap %.1f KiB, stack %.1f KiB\n",
			mib(rt.HeapBeforeKiB), mib(rt.HeapHeldKiB), mib(rt.StackBeforeKiB), mib(rt.StackHeldKiB),
			rt.HeapPerHeldReadKiB, rt.StackPerHeldReadKiB)
	}
}

func printCatchup(w io.Writer, r *catchupReport) {
	fmt.Fprintf(w, "comet-bench catchup: %d connections, reads returning %d messages\n", r.Connections, r.Messages)
	if r.Interrupted {
		fmt.Fprintln(w, "  INTERRUPTED: the figures cover the run up to the interrupt")
	}
	printLoad(w, "comet", r.Comet)
	if r.Compare != nil {
		printLoad(w, "compare", *r.Compare)
		fmt.Fprintf(w, "  ratio comet/compare: %.2f\n", r.Ratio)
	}
	fmt.Fprintf(w, "\nThe same load with wrk:\n  %s\n", r.WrkCommand)
	fmt.Fprintf(w, "\nA static baseline of the same body, for the same Caddy site (then -compare <site>/catchup-static.json):\n%s\n",
		indent(r.StaticSnippet, "  "))
}

func printLoad(w io.Writer, name string, r loadResult) {
	l := r.Latency
	fmt.Fprintf(w, "  %-8s %s (%d-byte body)\n", name+":", r.URL, r.BodyBytes)
	fmt.Fprintf(w, "           %d requests in %.1fs = %.0f/s; latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; errors: %s\n",
		r.Requests, r.Seconds, r.RequestsPerSecond, l.P50, l.P90, l.P99, l.Max, formatErrors(r.Errors))
}

// parsePIDs parses -pid's comma-separated process ids.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for f := range strings.SplitSeq(s, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid < 0 {
			return nil, fmt.Errorf("-pid %q: want process ids separated by commas", s)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func formatErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
