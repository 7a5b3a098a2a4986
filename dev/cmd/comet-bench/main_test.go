package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// validFanout is a config that passes validate, for tests to spoil one field
// at a time.
func validFanout() fanoutConfig {
	return fanoutConfig{
		targetConfig: targetConfig{Target: "http://127.0.0.1:1"}, Prefix: "bench", Channels: 10, Readers: 100, PerRead: 1,
		Messages: 10, Rate: 10, Size: 100, Publishers: 1, Duration: time.Second, Drain: time.Second,
		SetupTimeout: time.Second, Settle: 0, ReadTimeout: time.Minute, DialConcurrency: 16,
	}
}

func TestFanoutConfigLimits(t *testing.T) {
	if err := func() error { c := validFanout(); return c.validate() }(); err != nil {
		t.Fatalf("the valid config is refused: %v", err)
	}
	for _, tc := range []struct {
		name    string
		spoil   func(*fanoutConfig)
		wantErr string // "" = valid
	}{
		{"channels-per-read = channels", func(c *fanoutConfig) { c.PerRead = 10 }, ""},
		{"channels-per-read > channels", func(c *fanoutConfig) { c.PerRead = 11 }, "-channels-per-read 11"},
		{"channels-per-read 0", func(c *fanoutConfig) { c.PerRead = 0 }, "-channels-per-read 0"},
		{"no channels", func(c *fanoutConfig) { c.Channels = 0 }, "-channels 0"},
		{"no readers", func(c *fanoutConfig) { c.Readers = 0 }, "-readers 0"},
		{"no messages", func(c *fanoutConfig) { c.Messages = 0 }, "-messages 0"},
		{"zero rate", func(c *fanoutConfig) { c.Rate = 0 }, "-rate 0"},
		{"negative size", func(c *fanoutConfig) { c.Size = -1 }, "-size -1"},
		{"no publishers", func(c *fanoutConfig) { c.Publishers = 0 }, "-publishers 0"},
		{"zero duration", func(c *fanoutConfig) { c.Duration = 0 }, "-duration 0s"},
		{"bar in prefix", func(c *fanoutConfig) { c.Prefix = "a|b" }, "-prefix"},
		{"negative pid", func(c *fanoutConfig) { c.PID = -1 }, "-pid -1"},
		{"unknown client", func(c *fanoutConfig) { c.Client = "curl" }, `-client "curl"`},
		{"connections with the lean client", func(c *fanoutConfig) { c.Connections = 10 }, "applies to -client net/http only"},
		{"connections with net/http", func(c *fanoutConfig) { c.Client, c.Connections = "net/http", 10 }, ""},
		{"negative connections", func(c *fanoutConfig) { c.Client, c.Connections = "net/http", -1 }, "-connections -1"},
		// Readers against the open-file limit: 64 files are kept for
		// everything else.
		{"readers at the file limit", func(c *fanoutConfig) { c.FileLimit = 20000; c.Readers = 20000 - 64 }, ""},
		{"readers over the file limit", func(c *fanoutConfig) { c.FileLimit = 20000; c.Readers = 20000 - 63 },
			"the open-file limit is 20000 (at most 19936 readers)"},
		// The delivery ledger: readers x messages bits, capped at 1 GiB.
		{"ledger at the limit", func(c *fanoutConfig) { c.Readers = 1 << 17; c.Messages = 1<<16 - 128 }, ""},
		{"ledger over the limit", func(c *fanoutConfig) { c.Readers = 1 << 17; c.Messages = 1 << 16 }, "MiB of delivery records"},
		{"warm-up counts in the ledger", func(c *fanoutConfig) {
			c.Readers, c.Messages, c.Rate, c.Warmup = 1<<17, 1<<16-128, 64, 2*time.Second
		}, "MiB of delivery records"},
	} {
		c := validFanout()
		tc.spoil(&c)
		err := c.validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestWarmupMessages(t *testing.T) {
	c := validFanout()
	c.Rate, c.Warmup = 20, 1500*time.Millisecond
	if got := c.warmupMessages(); got != 30 {
		t.Errorf("warm-up of 1.5s at 20/s = %d messages, want 30", got)
	}
}

func TestReaderChannelsSpreadEvenly(t *testing.T) {
	const readers, channels, perRead = 5000, 10, 3
	subs := make([]int, channels)
	for i := range readers {
		mine := readerChannels(i, perRead, channels)
		seen := map[int]bool{}
		for _, c := range mine {
			if seen[c] {
				t.Fatalf("reader %d reads channel %d twice: %v", i, c, mine)
			}
			seen[c] = true
			subs[c]++
		}
	}
	for c, n := range subs {
		if n != readers*perRead/channels {
			t.Errorf("channel %d has %d readers, want %d", c, n, readers*perRead/channels)
		}
	}
}

// The tool refuses a remote target before it sends anything: 192.0.2.1 is
// TEST-NET-1, where nothing answers, so a request would hang, not fail.
func TestCommandRefusesRemoteTarget(t *testing.T) {
	for _, mode := range []string{"fanout", "catchup"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{mode, "-target", "http://192.0.2.1:4080", "-quiet"}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "not a loopback address") ||
			!strings.Contains(stderr.String(), "-allow-remote") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and a refusal naming -allow-remote", mode, code, stderr.String())
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
		inStdout string
	}{
		{[]string{"-h"}, 0, "Flags of fanout", ""},
		{[]string{"fanout", "-h"}, 0, "-channels-per-read", ""},
		{[]string{"catchup", "-h"}, 0, "-compare", ""},
		{[]string{"help"}, 0, "", "comet-bench catchup"},
		{[]string{"fanin"}, 1, `unknown mode "fanin"`, ""},
		{[]string{"fanout", "-readers", "x"}, 1, "invalid value", ""},
		{[]string{"fanout", "extra"}, 1, `unexpected argument "extra"`, ""},
		{[]string{"fanout", "-readers", "0", "-quiet"}, 1, "-readers 0: need at least 1", ""},
		{[]string{"fanout", "-publish-header", "bad", "-quiet"}, 1, "Name: value", ""},
		{[]string{"catchup", "-connections", "0", "-quiet"}, 1, "-connections 0: need at least 1", ""},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.inStderr) || !strings.Contains(stdout.String(), tc.inStdout) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stderr with %q, stdout with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.inStderr, tc.inStdout)
		}
	}
}

func TestWrkCommandAndSnippet(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", 1500 * time.Millisecond: "2s", time.Millisecond: "1s"} {
		if got := wrkDuration(d); got != want {
			t.Errorf("wrkDuration(%v) = %q, want %q", d, got, want)
		}
	}
	s := staticSnippet([]byte(`{"a":1}`))
	if !strings.Contains(s, "respond `{\"a\":1}` 200") || !strings.Contains(s, "handle /catchup-static.json {") {
		t.Errorf("snippet = %q", s)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	n, err := raiseFileLimit()
	if err != nil || n == 0 {
		t.Errorf("raiseFileLimit = %d, %v", n, err)
	}
}

// -pid takes one process id or several, comma-separated (nginx's master
// and workers), whose memory is summed.
func TestParsePIDs(t *testing.T) {
	if pids, err := parsePIDs("10, 11,12"); err != nil || len(pids) != 3 || pids[0] != 10 || pids[2] != 12 {
		t.Errorf("parsePIDs = %v, %v", pids, err)
	}
	for _, s := range []string{"", "10,", "x", "10,-1"} {
		if _, err := parsePIDs(s); err == nil {
			t.Errorf("parsePIDs(%q) accepted it", s)
		}
	}
}
