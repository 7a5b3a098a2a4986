// Package redistest starts real redis-server processes for tests: a
// standalone server, a Sentinel, a Cluster, a TLS server. Each runs on a free
// port in a t.TempDir() and is stopped when the test ends.
//
// When redis-server is not installed the test is skipped, except when the
// environment has CI=true, where it fails.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/internal/freeport"
)

// startTimeout bounds how long a server may take to say it is ready.
const startTimeout = 15 * time.Second

// Server is one redis-server process.
type Server struct {
	// Port is the TCP port it listens on (the TLS port for TLS servers).
	Port int
	// Dir is its working directory (RDB/AOF files, cluster config).
	Dir string

	t    testing.TB
	args []string
	// ready is the log line that says the server accepts connections.
	ready string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// RequireBinary skips the test when redis-server is missing (fails under
// CI=true) and returns its path.
func RequireBinary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (CI=true): %v", err)
		}
		t.Skip("redis-server not installed; install it with: apt-get install -y redis-server")
	}
	return path
}

// Start starts a standalone redis-server that keeps nothing on disk. extra
// arguments are appended to the command line and override the defaults, as
// in Start(t, "--appendonly", "yes").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := newServer(t, "Ready to accept connections")
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
	}, extra...)
	s.start()
	return s
}

func newServer(t testing.TB, ready string) *Server {
	t.Helper()
	RequireBinary(t)
	s := &Server{Port: freeport.Get(t), Dir: t.TempDir(), t: t, ready: ready}
	t.Cleanup(s.Kill)
	return s
}

// start runs the server and returns once it logged its ready line.
func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir = s.Dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatalf("redis-server stdout: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	ready := make(chan struct{})
	var logged strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			if logged.Len() < 16<<10 {
				logged.WriteString(line + "\n")
			}
			logMu.Unlock()
			if !signalled && strings.Contains(line, s.ready) {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-done:
		logMu.Lock()
		defer logMu.Unlock()
		s.t.Fatalf("redis-server %v exited before it was ready:\n%s", s.args, logged.String())
	case <-time.After(startTimeout):
		s.Kill()
		logMu.Lock()
		defer logMu.Unlock()
		s.t.Fatalf("redis-server %v not ready after %v:\n%s", s.args, startTimeout, logged.String())
	}
}

// Kill stops the server at once (SIGKILL: no shutdown save) and waits for
// it to exit. It does nothing when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the killed server again, same port, same directory, same
// arguments.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Run sends one command to the server; see Command.
func (s *Server) Run(args ...string) (string, error) {
	return Command(s.Addr(), args...)
}

// Command sends one command to addr over a fresh connection and returns its
// reply, flattened to text (bulk strings and integers as they are, arrays
// one item a line). An error reply is returned as an error.
func Command(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	var out strings.Builder
	if err := readReply(bufio.NewReader(conn), &out); err != nil {
		return out.String(), err
	}
	return out.String(), nil
}

func readReply(r *bufio.Reader, out *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		out.WriteString(line[1:] + "\n")
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		out.Write(buf[:n])
		out.WriteString("\n")
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := readReply(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Sentinel starts a Sentinel that monitors master under the name
// masterName (quorum 1) and returns once it monitors it.
func Sentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	s := newServer(t, "+monitor master "+masterName)
	conf := filepath.Join(s.Dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n",
		s.Port, s.Dir, masterName, master.Port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatalf("writing sentinel config: %v", err)
	}
	s.args = []string{conf, "--sentinel", "--logfile", "", "--daemonize", "no"}
	s.start()
	return s
}

// Freeze stops the server without ending it (SIGSTOP), as a host that hangs
// or drops off the network: connections stay open and new ones are accepted
// by the kernel, but nothing answers until Thaw. Kill ends a frozen server.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("signalling redis-server on port %d: not running", s.Port)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server on port %d: %v", s.Port, err)
	}
}
