package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/simple-comet/caddy-comet/internal/caddyproc"
)

func TestMain(m *testing.M) {
	os.Exit(caddyproc.RunTests(m))
}

// The site of the end-to-end tests: a public route that only serves
// reads, a protected route for publishing, managing and status (basic auth,
// under /ops/), a quote_json read route under /quoted/, and a static
// respond for the catch-up comparison.
const e2eSite = `
%s {
	handle_path /ops/* {
		basic_auth {
			bench %s
		}
		comet {
			http_timeout 2s
			allow publish manage status
			enable_status
		}
	}
	handle_path /quoted/* {
		comet {
			allow subscribe
			quote_json
		}
	}
	handle /static.json {
		respond ` + "`" + `{"static":true}` + "`" + ` 200
	}
	comet {
		http_timeout 2s
		allow subscribe
	}
}
`

const e2eUser, e2ePassword = "bench", "s3cret"

func startCaddy(t *testing.T) *caddyproc.Process {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Caddy; skipped with -short")
	}
	// The lowest bcrypt cost: what "caddy hash-password" makes takes a
	// second of CPU to check, which is not what these tests are about.
	hash, err := bcrypt.GenerateFromPassword([]byte(e2ePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return caddyproc.Start(t, func(base string) string {
		return fmt.Sprintf(e2eSite, base, bytes.TrimSpace(hash))
	})
}

// e2eTargets reads through srv's route at path and publishes through its
// protected /ops route with password.
func e2eTargets(srv *caddyproc.Process, path, password string) targetConfig {
	return targetConfig{Target: srv.Base + path, PublishTarget: srv.Base + "/ops", PublishAuth: e2eUser + ":" + password}
}

// A fan-out run against the real server: every message reaches every reader
// of its channel once, readers span several channels, publishing goes
// through a separate protected route, held reads are seen in /status.json,
// and the server's memory is read from its pid. Both reader clients, through
// plain and quote_json routes.
func TestFanoutAgainstCaddy(t *testing.T) {
	srv := startCaddy(t)
	for _, tc := range []struct{ client, path, prefix string }{
		{"lean", "", "e2e-lean"},
		{"net/http", "/quoted", "e2e-nethttp"},
	} {
		t.Run(strings.ReplaceAll(tc.client, "/", "_"), func(t *testing.T) {
			cfg := fanoutConfig{
				targetConfig: e2eTargets(srv, tc.path, e2ePassword), Client: tc.client, Prefix: tc.prefix,
				Channels: 4, Readers: 40, PerRead: 2, Messages: 60, Rate: 100, Size: 120, Publishers: 2,
				Warmup: 100 * time.Millisecond, Duration: time.Minute, Drain: 20 * time.Second, SetupTimeout: 30 * time.Second,
				UseStatus: true, ReadTimeout: 30 * time.Second, PID: srv.PID, DialConcurrency: 8,
				Expvar: srv.Admin + "/debug/vars",
			}
			rep, err := runFanout(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			// Every channel has 40*2/4 = 20 readers; 10 warm-up messages
			// at 100/s come first.
			const owed = 20
			total := rep.WarmupMessages + cfg.Messages
			if rep.WarmupMessages != 10 {
				t.Errorf("warm-up messages = %d, want 10", rep.WarmupMessages)
			}
			want := deliveryCounts{Expected: int64(total * owed), Delivered: int64(total * owed)}
			if rep.deliveryCounts != want || !rep.Complete || rep.Reordered != 0 || rep.Published != int64(total) || !rep.ok() {
				t.Errorf("deliveries %+v complete %v reordered %d published %d; want %+v, complete, none reordered, %d published (errors %v, %s)",
					rep.deliveryCounts, rep.Complete, rep.Reordered, rep.Published, want, total, rep.Errors, rep.LastError)
			}
			if rep.Latency.Count != uint64(cfg.Messages*owed) {
				t.Errorf("timed deliveries = %d, want %d (warm-up ones untimed)", rep.Latency.Count, cfg.Messages*owed)
			}
			if rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
				t.Errorf("latency %+v is not a plausible distribution", rep.Latency)
			}
			if rep.Reads == 0 || rep.ReadsPerSecond <= 0 {
				t.Errorf("reads = %d (%v/s), want some", rep.Reads, rep.ReadsPerSecond)
			}
			if len(rep.Errors) != 0 {
				t.Errorf("errors: %v", rep.Errors)
			}
			if !strings.HasPrefix(rep.HeldCheck, "status.json") {
				t.Errorf("held check = %q, want it from status.json", rep.HeldCheck)
			}
			if m := rep.Memory; m == nil || m.BeforeKiB <= 0 || m.HeldKiB <= 0 || m.EndKiB <= 0 || m.PeakKiB < m.EndKiB {
				t.Errorf("memory report = %+v, want the server's RSS figures", rep.Memory)
			}
			if rt := rep.Runtime; rt == nil || rt.HeapBeforeKiB <= 0 || rt.HeapHeldKiB <= 0 || rt.StackBeforeKiB <= 0 || rt.StackHeldKiB <= 0 {
				t.Errorf("Go runtime report = %+v, want the server's heap and stack figures", rep.Runtime)
			}
		})
	}
}

// A second run on the same channels must see only its own messages: the
// start marker keeps the first run's messages (still retained) out.
func TestFanoutRepeatsOnSameChannels(t *testing.T) {
	srv := startCaddy(t)
	cfg := fanoutConfig{
		targetConfig: e2eTargets(srv, "", e2ePassword), Prefix: "e2e-repeat",
		Channels: 2, Readers: 6, PerRead: 1, Messages: 10, Rate: 200, Size: 0, Publishers: 1,
		Duration: time.Minute, Drain: 20 * time.Second, SetupTimeout: 30 * time.Second,
		Settle: 200 * time.Millisecond, ReadTimeout: 30 * time.Second,
	}
	for run := range 2 {
		rep, err := runFanout(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if !rep.ok() || rep.Delivered != 30 || rep.Foreign != 0 {
			t.Errorf("run %d: delivered %d (want 30), foreign %d (want 0), ok %v; %+v", run, rep.Delivered, rep.Foreign, rep.ok(), rep)
		}
	}
}

// Wrong credentials on the publish route fail the setup with the server's
// answer, not a hang or a report of zeros.
func TestFanoutReportsRefusedPublishRoute(t *testing.T) {
	srv := startCaddy(t)
	cfg := fanoutConfig{
		targetConfig: e2eTargets(srv, "", "wrong"), Prefix: "e2e-auth",
		Channels: 1, Readers: 1, PerRead: 1, Messages: 1, Rate: 1, Publishers: 1,
		Duration: time.Minute, SetupTimeout: time.Minute, ReadTimeout: time.Minute,
	}
	_, err := runFanout(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("runFanout with a wrong password: %v, want an HTTP 401 error", err)
	}
	// The public route does not publish: 403 from the handler.
	cfg.PublishTarget, cfg.PublishAuth = "", ""
	_, err = runFanout(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") {
		t.Errorf("runFanout publishing on the subscribe-only route: %v, want an HTTP 403 error", err)
	}
}

func TestCatchupAgainstCaddy(t *testing.T) {
	srv := startCaddy(t)
	cfg := catchupConfig{
		targetConfig: e2eTargets(srv, "", e2ePassword), Channel: "e2e-catchup",
		Messages: 5, Size: 100, Connections: 4, Duration: 500 * time.Millisecond,
		Compare: srv.Base + "/static.json", WrkThreads: 2,
	}
	rep, err := runCatchup(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Comet.Requests == 0 || len(rep.Comet.Errors) != 0 || rep.Comet.BodyBytes < 5*100 {
		t.Errorf("comet load: %+v; want requests, no errors, a body with 5 messages", rep.Comet)
	}
	if rep.Compare == nil || rep.Compare.Requests == 0 || len(rep.Compare.Errors) != 0 || rep.Ratio <= 0 {
		t.Errorf("compare load: %+v, ratio %v", rep.Compare, rep.Ratio)
	}
	wantURL := srv.Base + "/channels/e2e-catchup.json?since=0"
	if rep.Comet.URL != wantURL || rep.WrkCommand != "wrk -t2 -c4 -d1s --latency '"+wantURL+"'" {
		t.Errorf("url %q, wrk command %q", rep.Comet.URL, rep.WrkCommand)
	}

	// The printed static route is a valid Caddyfile route.
	conf := filepath.Join(t.TempDir(), "Caddyfile")
	site := "http://127.0.0.1:1 {\n" + indent(rep.StaticSnippet, "\t") + "\n}\n"
	if err := os.WriteFile(conf, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(caddyproc.Build(t), "adapt", "--config", conf, "--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Errorf("caddy adapt of the printed snippet: %v\n%s\n%s", err, out, site)
	}

	// Asking for fewer messages than the channel already retains is
	// refused with a way out, not measured wrongly.
	cfg.Messages, cfg.Compare = 3, ""
	_, err = runCatchup(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "returns 5 messages, not 3") {
		t.Errorf("catch-up on a channel retaining 5 with -messages 3: %v", err)
	}
}
