package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// centrifugoInstall is how to get the Centrifugo these tests run, and the
// version the side by side (scripts/bench-peers.sh) was written against.
const centrifugoInstall = "go install github.com/centrifugal/centrifugo/v6@v6.9.1"

// centrifugoConfig is the least Centrifugo v6 config that -api centrifugo
// needs: HS256 connection tokens, the server API's key, uni_sse, and
// channels without a namespace keeping history and forcing recovery, so
// that readers start from a marker and resume after a reconnection.
// scripts/bench-peers.sh writes the same.
const centrifugoConfig = `{
  "http_server": {"address": "127.0.0.1", "port": "%d"},
  "log": {"level": "warn"},
  "usage_stats": {"disabled": true},
  "client": {"token": {"hmac_secret_key": %q}},
  "http_api": {"key": %q},
  "uni_sse": {"enabled": true},
  "channel": {"without_namespace": {"history_size": 100, "history_ttl": "1h", "force_recovery": true}}
}
`

// centrifugoBinary finds Centrifugo: $CENTRIFUGO, else centrifugo on the
// PATH, else in $(go env GOPATH)/bin. The test is skipped without it, in
// CI too, where .ci/run does not install it.
func centrifugoBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Centrifugo; skipped with -short")
	}
	if bin := os.Getenv("CENTRIFUGO"); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath("centrifugo"); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		bin := filepath.Join(strings.TrimSpace(string(out)), "bin", "centrifugo")
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	t.Skipf("Centrifugo is not installed (not in $CENTRIFUGO, on the PATH or in GOPATH/bin): %s", centrifugoInstall)
	return ""
}

// startCentrifugo runs Centrifugo on a free port with centrifugoConfig and
// returns its base URL and process id once its API answers. It is stopped
// when the test ends, and its log printed if the test failed.
func startCentrifugo(t *testing.T, secret, apiKey string) (base string, pid int) {
	t.Helper()
	bin := centrifugoBinary(t)
	dir := t.TempDir()
	port := freeport.Get(t)
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, fmt.Appendf(nil, centrifugoConfig, port, secret, apiKey), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", config)
	cmd.Dir = dir
	var log strings.Builder
	var logMu sync.Mutex
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &logMu, w: &log}, &lockedWriter{mu: &logMu, w: &log}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting centrifugo: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("log of centrifugo:\n%s", log.String())
			logMu.Unlock()
		}
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	// Centrifugo says nothing at log level warn once it serves: its API
	// answering is the sign.
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/info", strings.NewReader("{}"))
		req.Header.Set("X-API-Key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, cmd.Process.Pid
			}
		}
		select {
		case <-exited:
			t.Fatal("centrifugo exited before serving")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("centrifugo not serving on %s after 30s (last error %v)", base, err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A fan-out run against a real Centrifugo: every publication reaches every
// reader once and in order, readers with several channels in one uni_sse
// connection, while the server API disconnects readers over and over: each
// reconnects and recovers what was published meanwhile. The server's CPU
// and memory come from its pid.
func TestFanoutAgainstCentrifugo(t *testing.T) {
	base, pid := startCentrifugo(t, "e2e-secret", "e2e-key")
	cfg := fanoutConfig{
		targetConfig: targetConfig{Target: base}, API: apiCentrifugo, Transport: transportSSE,
		TokenSecret: "e2e-secret", APIKey: "e2e-key",
		Prefix: "e2e", Channels: 4, Readers: 40, PerRead: 2, Messages: 100, Rate: 100, Size: 120, Publishers: 2,
		Warmup: 100 * time.Millisecond, Duration: time.Minute, Drain: 20 * time.Second, SetupTimeout: 30 * time.Second,
		UseStatus: true, ReadTimeout: 30 * time.Second, PID: pid, DialConcurrency: 8,
	}

	// Disconnect a reader every 50 ms for as long as the run lasts.
	ctx, stop := context.WithCancel(context.Background())
	disconnects := make(chan int)
	go func() {
		n := 0
		defer func() { disconnects <- n }()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			body := fmt.Sprintf(`{"user":"comet-bench-%d"}`, i%cfg.Readers)
			req, _ := http.NewRequest(http.MethodPost, base+"/api/disconnect", strings.NewReader(body))
			req.Header.Set("X-API-Key", cfg.APIKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				n++
			}
		}
	}()
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	stop()
	sent := <-disconnects
	if err != nil {
		t.Fatal(err)
	}
	// Each channel has 40*2/4 = 20 readers.
	total := int64(rep.WarmupMessages + cfg.Messages)
	if !rep.ok() || rep.Delivered != total*20 || rep.Foreign != 0 || rep.Reordered != 0 {
		t.Errorf("delivered %d of %d, lost %d, duplicated %d, reordered %d, foreign %d, ok %v (errors %v, %s)",
			rep.Delivered, total*20, rep.Lost, rep.Duplicated, rep.Reordered, rep.Foreign, rep.ok(), rep.Errors, rep.LastError)
	}
	if rep.Latency.Count != uint64(cfg.Messages*20) {
		t.Errorf("timed deliveries %d, want %d", rep.Latency.Count, cfg.Messages*20)
	}
	disconnected := int64(0)
	for kind, n := range rep.Errors {
		switch {
		case strings.HasPrefix(kind, "read_disconnect_"), kind == "read_stream_ended":
			disconnected += n
		default:
			t.Errorf("errors: %v", rep.Errors)
		}
	}
	if disconnected == 0 {
		t.Errorf("no reader was disconnected (%d disconnects sent): the test did not cover recovering", sent)
	}
	if !strings.HasPrefix(rep.HeldCheck, "centrifugo connect pushes: 40 held") {
		t.Errorf("held check %q", rep.HeldCheck)
	}
	if c := rep.CPU; c == nil || c.Error != "" || c.Seconds <= 0 || c.Deliveries != rep.Delivered {
		t.Errorf("cpu report %+v, want Centrifugo's CPU time over %d deliveries", rep.CPU, rep.Delivered)
	}
	if m := rep.Memory; m == nil || m.HeldKiB <= 0 {
		t.Errorf("memory report %+v", rep.Memory)
	}
}
