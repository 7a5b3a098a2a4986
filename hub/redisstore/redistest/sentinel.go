package redistest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// syncedLine is what a replica logs once it holds its master's data.
const syncedLine = "MASTER <-> REPLICA sync: Finished with success"

// Replica starts a standalone redis-server that replicates master and
// returns once it has finished its first sync. extra arguments are appended
// as in Start.
func Replica(t testing.TB, master *Server, extra ...string) *Server {
	t.Helper()
	// A master waits 5 s by default before a diskless sync, for more
	// replicas to share it.
	if _, err := master.Run("CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("configuring the master on port %d: %v", master.Port, err)
	}
	s := newServer(t, syncedLine)
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
		"--replicaof", "127.0.0.1", strconv.Itoa(master.Port),
	}, extra...)
	s.start()
	return s
}

// SentinelConfig describes a group of sentinels that monitor one master.
type SentinelConfig struct {
	// Name is the master set's name.
	Name string
	// Master is the server the sentinels start monitoring.
	Master *Server
	// Replicas are the master's replicas, told to the sentinels up front so
	// that they need not discover them (which takes up to 10 s).
	Replicas []*Server
	// Count is the number of sentinels. Default: 1.
	Count int
	// Quorum is how many sentinels must agree that the master is down.
	// Default: a majority of Count.
	Quorum int
	// DownAfter is Sentinel's down-after-milliseconds. Default: Sentinel's
	// (30 s).
	DownAfter time.Duration
	// FailoverTimeout is Sentinel's failover-timeout; a sentinel does not
	// start a failover of the same master again within twice that. Default:
	// Sentinel's (3 min).
	FailoverTimeout time.Duration
}

// Sentinels starts cfg.Count sentinels that monitor cfg.Master, each told
// of the others and of cfg.Replicas, and returns once every one monitors
// the master.
func Sentinels(t testing.TB, cfg SentinelConfig) []*Server {
	t.Helper()
	if cfg.Count <= 0 {
		cfg.Count = 1
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = cfg.Count/2 + 1
	}
	sentinels := make([]*Server, cfg.Count)
	ids := make([]string, cfg.Count)
	for i := range sentinels {
		sentinels[i] = newServer(t, "+monitor master "+cfg.Name)
		id := make([]byte, 20)
		_, _ = rand.Read(id)
		ids[i] = hex.EncodeToString(id)
	}
	for i, s := range sentinels {
		var b strings.Builder
		fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\ndir %s\nsentinel myid %s\n", s.Port, s.Dir, ids[i])
		fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", cfg.Name, cfg.Master.Port, cfg.Quorum)
		if cfg.DownAfter > 0 {
			fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", cfg.Name, cfg.DownAfter.Milliseconds())
		}
		if cfg.FailoverTimeout > 0 {
			fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", cfg.Name, cfg.FailoverTimeout.Milliseconds())
		}
		for _, r := range cfg.Replicas {
			fmt.Fprintf(&b, "sentinel known-replica %s 127.0.0.1 %d\n", cfg.Name, r.Port)
		}
		for j, o := range sentinels {
			if j != i {
				fmt.Fprintf(&b, "sentinel known-sentinel %s 127.0.0.1 %d %s\n", cfg.Name, o.Port, ids[j])
			}
		}
		conf := filepath.Join(s.Dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
			t.Fatalf("writing sentinel config: %v", err)
		}
		s.args = []string{conf, "--sentinel", "--logfile", "", "--daemonize", "no"}
		s.start()
	}
	return sentinels
}

// Message is one pub/sub message, with the time it was read.
type Message struct {
	Channel, Payload string
	At               time.Time
}

// Subscribe subscribes to channels on addr over a connection of its own and
// returns the messages as they come, until the test ends. It returns once
// the subscriptions are confirmed.
func Subscribe(t testing.TB, addr string, channels ...string) <-chan Message {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("subscribing on %s: %v", addr, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n$9\r\nSUBSCRIBE\r\n", len(channels)+1)
	for _, c := range channels {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(c), c)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("subscribing on %s: %v", addr, err)
	}
	r := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range channels {
		var out strings.Builder
		if err := readReply(r, &out); err != nil || !strings.HasPrefix(out.String(), "subscribe\n") {
			t.Fatalf("subscribing on %s: %q %v", addr, out.String(), err)
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	msgs := make(chan Message, 256)
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			var out strings.Builder
			if err := readReply(r, &out); err != nil {
				return
			}
			// "message\n<channel>\n<payload>\n"
			parts := strings.SplitN(strings.TrimSuffix(out.String(), "\n"), "\n", 3)
			if len(parts) != 3 || parts[0] != "message" {
				continue
			}
			select {
			case msgs <- Message{Channel: parts[1], Payload: parts[2], At: time.Now()}:
			default: // a test that stopped reading must not block the reader
			}
		}
	}()
	return msgs
}
