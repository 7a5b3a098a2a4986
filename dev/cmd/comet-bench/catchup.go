package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// catchupConfig is one catch-up run: many clients repeating a read that
// returns at once with the messages a channel retains.
type catchupConfig struct {
	targetConfig

	// Channel is the channel read; it is registered to retain exactly
	// Messages messages, and filled.
	Channel  string
	Messages int
	Size     int
	// Connections is the number of concurrent clients.
	Connections int
	Duration    time.Duration
	// Compare is a URL loaded the same way after the catch-up read, such as
	// a static respond of the same body; empty skips it.
	Compare string
	// WrkThreads is the -t of the printed wrk command.
	WrkThreads int

	ProgressEvery time.Duration
}

func (c *catchupConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Channel == "" || strings.Contains(c.Channel, "|") {
		bad("-channel %q: must be non-empty and without '|'", c.Channel)
	}
	if c.Messages < 1 {
		bad("-messages %d: need at least 1", c.Messages)
	}
	if c.Size < 0 {
		bad("-size %d: must not be negative", c.Size)
	}
	if c.Connections < 1 {
		bad("-connections %d: need at least 1", c.Connections)
	}
	if c.Duration <= 0 {
		bad("-duration %v: must be positive", c.Duration)
	}
	if c.WrkThreads < 1 {
		bad("-wrk-threads %d: need at least 1", c.WrkThreads)
	}
	return errors.Join(errs...)
}

// loadResult is the outcome of loading one URL.
type loadResult struct {
	URL               string           `json:"url"`
	BodyBytes         int              `json:"body_bytes"`
	Requests          int64            `json:"requests"`
	RequestsPerSecond float64          `json:"requests_per_second"`
	Latency           latencySummary   `json:"latency"`
	Errors            map[string]int64 `json:"errors"`
	Seconds           float64          `json:"seconds"`
}

// catchupReport is the outcome of a catch-up run.
type catchupReport struct {
	Connections int         `json:"connections"`
	Messages    int         `json:"messages"`
	Comet       loadResult  `json:"comet"`
	Compare     *loadResult `json:"compare,omitempty"`
	// Ratio is Comet's requests/s over Compare's.
	Ratio float64 `json:"ratio,omitempty"`
	// WrkCommand loads the same URL with wrk.
	WrkCommand string `json:"wrk_command"`
	// StaticSnippet is a Caddyfile route that serves the same body with
	// respond, for the comparison the issue asks for.
	StaticSnippet string `json:"static_snippet"`
	Interrupted   bool   `json:"interrupted"`
}

// runCatchup fills the channel, then loads the read (and Compare).
func runCatchup(ctx context.Context, cfg catchupConfig, progress io.Writer) (*catchupReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	read, pub, err := cfg.endpoints(ctx, cfg.Connections, 0)
	if err != nil {
		return nil, err
	}
	defer read.client.CloseIdleConnections()
	defer pub.client.CloseIdleConnections()
	compare := ""
	if cfg.Compare != "" {
		if compare, err = checkBase(ctx, cfg.Compare, cfg.AllowRemote); err != nil {
			return nil, fmt.Errorf("-compare: %w", err)
		}
	}

	if err := pub.registerChannel(ctx, cfg.Channel, cfg.Messages); err != nil {
		return nil, err
	}
	run := newRunID()
	for i := range cfg.Messages {
		if _, err := pub.publish(ctx, cfg.Channel, messageContent(run, i, time.Now(), cfg.Size)); err != nil {
			return nil, err
		}
	}
	readURL := read.base + readPath([]string{cfg.Channel}) + "?since=0"
	ref, err := fetch(ctx, read.client, readURL)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", readURL, err)
	}
	r, err := decodeReply(ref)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", readURL, err)
	}
	if n := len(r.Messages[cfg.Channel]); n != cfg.Messages {
		return nil, fmt.Errorf("channel %q returns %d messages, not %d: it existed with another max_messages; "+
			"delete it (DELETE %s) or pick another -channel", cfg.Channel, n, cfg.Messages,
			pub.base+readPath([]string{cfg.Channel}))
	}
	// Another publisher in the hub changes last_id, so a body that differs
	// from the first one is checked for the messages before it counts as
	// an error.
	check := func(b []byte) bool {
		if bytes.Equal(b, ref) {
			return true
		}
		r, err := decodeReply(b)
		return err == nil && r.ReturnCode == 1 && len(r.Messages[cfg.Channel]) == cfg.Messages
	}

	rep := &catchupReport{
		Connections: cfg.Connections,
		Messages:    cfg.Messages,
		WrkCommand: fmt.Sprintf("wrk -t%d -c%d -d%s --latency '%s'",
			cfg.WrkThreads, cfg.Connections, wrkDuration(cfg.Duration), readURL),
		StaticSnippet: staticSnippet(ref),
	}
	lo := loadOptions{conns: cfg.Connections, duration: cfg.Duration, insecure: cfg.Insecure, progress: progress, every: cfg.ProgressEvery}
	if rep.Comet, err = load(ctx, readURL, check, lo); err != nil {
		return nil, err
	}
	rep.Comet.BodyBytes = len(ref)
	if compare != "" && ctx.Err() == nil {
		cref, err := fetch(ctx, read.client, compare)
		if err != nil {
			return nil, fmt.Errorf("reading -compare %s: %w", compare, err)
		}
		same := func(b []byte) bool { return bytes.Equal(b, cref) }
		c, err := load(ctx, compare, same, lo)
		if err != nil {
			return nil, err
		}
		c.BodyBytes = len(cref)
		rep.Compare = &c
		if c.RequestsPerSecond > 0 {
			rep.Ratio = rep.Comet.RequestsPerSecond / c.RequestsPerSecond
		}
	}
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// fetch GETs url and returns the body of a 200 reply.
func fetch(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, abbreviate(b))
	}
	return b, nil
}

// loadOptions shape a load: how many clients, for how long.
type loadOptions struct {
	conns    int
	duration time.Duration
	insecure bool
	progress io.Writer
	every    time.Duration
}

// load has o.conns clients GET rawURL back to back for o.duration, each on
// its own connection, and counts the replies that pass check. The clients
// are lean pollers, like the fan-out readers: on a machine the tool shares
// with the server, a heavier client would cap the figure itself.
func load(ctx context.Context, rawURL string, check func([]byte) bool, o loadOptions) (loadResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return loadResult{}, err
	}
	d, err := newLeanDialer(&endpoint{base: u.Scheme + "://" + u.Host}, 30*time.Second, 0, o.insecure)
	if err != nil {
		return loadResult{}, err
	}
	path := u.RequestURI()

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	lat := newHistogram()
	errs := &errorCounts{}
	var done atomic.Int64
	stop := startProgress(o.every, o.progress, func(elapsed time.Duration, rps float64) string {
		return fmt.Sprintf("[%5.1fs] %s  %d requests  %.0f/s  errors %d", elapsed.Seconds(), rawURL, done.Load(), rps, errs.total())
	}, done.Load)
	defer stop()

	start := time.Now()
	var wg sync.WaitGroup
	for range o.conns {
		wg.Go(func() {
			p := newLeanPoller(d)
			defer p.close()
			var body bytes.Buffer
			for ctx.Err() == nil {
				t := time.Now()
				status, _, err := p.get(ctx, path, nil, &body, nil)
				switch {
				case err != nil && ctx.Err() != nil:
					return
				case err != nil:
					errs.add(errorKind(err))
					// Not a tight loop against a server that refuses.
					select {
					case <-time.After(10 * time.Millisecond):
					case <-ctx.Done():
					}
				case status != http.StatusOK:
					errs.add(fmt.Sprintf("http_%d", status))
				case !check(body.Bytes()):
					errs.add("unexpected_body")
				default:
					lat.record(time.Since(t))
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	res := loadResult{
		URL: rawURL, Requests: done.Load(), RequestsPerSecond: float64(done.Load()) / secs,
		Latency: lat.summary(), Errors: errs.snapshot(), Seconds: secs,
	}
	if res.Errors == nil {
		res.Errors = map[string]int64{}
	}
	return res, nil
}

// wrkDuration formats d for wrk's -d, which takes whole seconds.
func wrkDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", max(1, int64(d.Round(time.Second)/time.Second)))
}

// staticSnippet is a Caddyfile route serving body with respond, for the
// baseline: the same bytes through the same binary without the hub.
func staticSnippet(body []byte) string {
	return fmt.Sprintf("handle /catchup-static.json {\n\theader Content-Type application/json\n\trespond `%s` 200\n}", body)
}
