package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/internal/caddyproc"
	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// The benchmarks' Caddy serving the least hub and, beside it, comet, as
// scripts/bench-peers.sh runs them.
const leastHubCaddyfile = `{
	admin 127.0.0.1:%d
	persist_config off
	grace_period 1s
}
%s {
	bind 127.0.0.1
	handle_path /comet/* {
		comet {
			enable_status
		}
	}
	least_hub {
		http_timeout 2s
	}
}
`

// startLeastHub builds ./cmd/caddy-bench and runs it on leastHubCaddyfile.
func startLeastHub(t *testing.T) (base string, pid int) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Caddy; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "caddy-bench")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/simple-comet/caddy-comet/dev/cmd/caddy-bench").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy-bench: %v\n%s", err, out)
	}
	base = fmt.Sprintf("http://127.0.0.1:%d", freeport.Get(t))
	p := caddyproc.StartBinary(t, bin, fmt.Sprintf(leastHubCaddyfile, freeport.Get(t), base))
	return base, p.PID
}

// The load tool speaks the comet API to the least hub unchanged, long poll
// and SSE, and in a small run loses nothing: at 5 publishes per second on a
// channel, a long-poll reader is back before the channel's next publish.
// The comet handler in the same binary serves beside it.
func TestFanoutAgainstLeastHub(t *testing.T) {
	base, pid := startLeastHub(t)
	for _, tc := range []struct {
		transport string
		perRead   int
	}{
		{transportLongPoll, 1},
		{transportSSE, 2},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cfg := fanoutConfig{
				targetConfig: targetConfig{Target: base}, Transport: tc.transport, Prefix: "least-" + tc.transport,
				Channels: 4, Readers: 40, PerRead: tc.perRead, Messages: 40, Rate: 20, Size: 120, Publishers: 1,
				Warmup: 100 * time.Millisecond, Duration: time.Minute, Drain: 10 * time.Second, SetupTimeout: 30 * time.Second,
				UseStatus: true, ReadTimeout: 30 * time.Second, PID: pid, DialConcurrency: 8,
			}
			rep, err := runFanout(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			owed := int64(cfg.Readers * tc.perRead / cfg.Channels)
			total := int64(rep.WarmupMessages + cfg.Messages)
			if !rep.ok() || rep.Delivered != total*owed || rep.Lost != 0 || rep.Reordered != 0 {
				t.Errorf("delivered %d of %d, lost %d, duplicated %d, reordered %d, ok %v (errors %v, %s)",
					rep.Delivered, total*owed, rep.Lost, rep.Duplicated, rep.Reordered, rep.ok(), rep.Errors, rep.LastError)
			}
			if len(rep.Errors) != 0 {
				t.Errorf("errors: %v", rep.Errors)
			}
			if !strings.HasPrefix(rep.HeldCheck, "status.json") {
				t.Errorf("held check %q", rep.HeldCheck)
			}
			if c := rep.CPU; c == nil || c.Error != "" || c.Deliveries != rep.Delivered {
				t.Errorf("cpu report %+v", rep.CPU)
			}
		})
	}
	resp, err := http.Get(base + "/comet/health.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("comet beside the least hub: /comet/health.json answered %d", resp.StatusCode)
	}
}
