package caddyproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

const (
	// startTimeout bounds how long Caddy may take to serve its first
	// configuration.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the graceful shutdown after the interrupt; then
	// the process is killed.
	stopTimeout = 10 * time.Second
	// maxLog bounds the log kept for a failed test's report.
	maxLog = 1 << 20
)

// globalOptions start the Caddyfile of a process from Start: the admin API
// on its own port (for Reload and /debug/vars), no autosave.json, and a
// short grace period so that stopping and reloading do not wait long for
// held reads.
const globalOptions = "{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tgrace_period 1s\n}\n"

// Process is one running caddy process.
type Process struct {
	// Base is the site's URL, http://127.0.0.1:PORT on a free port, for a
	// process from Start; empty for one from StartCaddyfile, whose Caddyfile
	// says where it listens.
	Base string
	// Admin is the admin API's URL, http://127.0.0.1:PORT on another free
	// port, for a process from Start; empty for one from StartCaddyfile.
	Admin string
	// PID is the process id.
	PID int

	t        testing.TB
	bin      string   // the binary; empty means Build's
	env      []string // added to Caddy's environment
	globals  string   // what the Caddyfile has before the site blocks
	config   string   // path of the Caddyfile
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process exited and its log is read
	stopOnce sync.Once

	logMu sync.Mutex
	log   strings.Builder
	// logGrew is closed, and replaced, each time a line is added to log.
	logGrew chan struct{}
}

// Start runs Caddy on the site blocks site returns for Base (the site's
// address), after global options that put the admin API on Admin, and
// returns once it serves them. It is stopped when the test ends, and its
// log printed if the test failed.
func Start(t testing.TB, site func(base string) string) *Process {
	t.Helper()
	return StartEnv(t, nil, site)
}

// StartEnv is Start with env ("NAME=value") added to Caddy's environment,
// for what only the environment sets, such as the Go runtime's GOGC and
// GODEBUG.
func StartEnv(t testing.TB, env []string, site func(base string) string) *Process {
	t.Helper()
	port, adminPort := freeport.Get(t), freeport.Get(t)
	p := &Process{
		Base:    fmt.Sprintf("http://127.0.0.1:%d", port),
		Admin:   fmt.Sprintf("http://127.0.0.1:%d", adminPort),
		globals: fmt.Sprintf(globalOptions, adminPort),
		env:     env,
	}
	p.start(t, site(p.Base))
	return p
}

// StartCaddyfile runs Caddy on a complete Caddyfile, as written, and
// returns once it serves it. It is stopped when the test ends, and its log
// printed if the test failed.
func StartCaddyfile(t testing.TB, caddyfile string) *Process {
	t.Helper()
	p := &Process{}
	p.start(t, caddyfile)
	return p
}

// StartBinary is StartCaddyfile with another Caddy binary than
// ./cmd/caddy: one built with more modules, such as the benchmarks' Caddy
// in the development module.
func StartBinary(t testing.TB, bin, caddyfile string) *Process {
	t.Helper()
	p := &Process{bin: bin}
	p.start(t, caddyfile)
	return p
}

func (p *Process) start(t testing.TB, sites string) {
	t.Helper()
	bin := p.bin
	if bin == "" {
		bin = Build(t)
	}
	dir := t.TempDir()
	p.t = t
	p.config = filepath.Join(dir, "Caddyfile")
	p.write(sites)
	p.cmd = exec.Command(bin, "run", "--config", p.config, "--adapter", "caddyfile")
	// Caddy's storage (certificates, locks) goes to the test's directory,
	// not the user's home.
	p.cmd.Env = append(os.Environ(), "HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p.cmd.Env = append(p.cmd.Env, p.env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	p.PID = p.cmd.Process.Pid
	p.exited = make(chan struct{})
	p.logGrew = make(chan struct{})
	serving := make(chan struct{})
	go p.readLog(stderr, serving)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			name := p.Base
			if name == "" {
				name = p.config
			}
			t.Logf("log of caddy %s:\n%s", name, p.logged())
		}
	})
	select {
	case <-serving:
	case <-p.exited:
		t.Fatal("caddy exited before serving its configuration")
	case <-time.After(startTimeout):
		t.Fatalf("caddy not serving after %v", startTimeout)
	}
}

// readLog keeps Caddy's log, closes serving when Caddy says it serves its
// configuration, and closes p.exited once the process has exited.
func (p *Process) readLog(stderr io.Reader, serving chan<- struct{}) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		p.logMu.Lock()
		if p.log.Len() < maxLog {
			p.log.WriteString(line + "\n")
			close(p.logGrew)
			p.logGrew = make(chan struct{})
		}
		p.logMu.Unlock()
		if !signalled && strings.Contains(line, "serving initial configuration") {
			signalled = true
			close(serving)
		}
	}
	// After an over-long line the scanner stops; Caddy must not block on
	// a full pipe, or it would never exit.
	_, _ = io.Copy(io.Discard, stderr)
	_ = p.cmd.Wait()
	close(p.exited)
}

// Log returns what Caddy has logged so far (its first MiB). After Stop, it
// is the whole log.
func (p *Process) Log() string { return p.logged() }

func (p *Process) logged() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// WaitLog waits until Caddy has logged a line that contains every one of
// parts, and returns it. It fails the test if no such line comes within
// startTimeout or the process exits first. It is how a test waits for what
// Caddy does on its own, such as a load balancer's first health probe.
// Only the first MiB of the log is searched.
func (p *Process) WaitLog(parts ...string) string {
	p.t.Helper()
	timeout := time.After(startTimeout)
	exited := false
	for {
		p.logMu.Lock()
		text, grew := p.log.String(), p.logGrew
		p.logMu.Unlock()
	lines:
		for line := range strings.Lines(text) {
			for _, part := range parts {
				if !strings.Contains(line, part) {
					continue lines
				}
			}
			return strings.TrimSuffix(line, "\n")
		}
		select {
		case <-grew:
		case <-p.exited:
			if exited {
				p.t.Fatalf("caddy exited before logging a line with %q", parts)
			}
			exited = true // look once more: its last lines came before

		case <-timeout:
			p.t.Fatalf("caddy logged no line with %q within %v", parts, startTimeout)
		}
	}
}

func (p *Process) write(sites string) {
	p.t.Helper()
	if err := os.WriteFile(p.config, []byte(p.globals+sites), 0o600); err != nil {
		p.t.Fatalf("writing the Caddyfile: %v", err)
	}
}

// Reload replaces the running configuration as `caddy reload` does, and
// returns once Caddy runs it. For a process from Start, sites are the site
// blocks after the same global options; for one from StartCaddyfile, a
// complete Caddyfile.
func (p *Process) Reload(sites string) {
	p.t.Helper()
	p.write(sites)
	// The reload command finds the admin API in the Caddyfile it loads.
	out, err := exec.Command(Build(p.t), "reload", "--config", p.config, "--adapter", "caddyfile").CombinedOutput()
	if err != nil {
		p.t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// Stop interrupts Caddy, as Ctrl-C does, and waits for it to exit, killing
// it if it has not after 10s. Only the first call does anything; the end of
// the test stops the process anyway.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}
