package comethttp

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestEventWritersStalledClients checks that clients that stop reading hold
// up no other client's events, however many writers they stall (events
// over inlineEventSize, and each stream's first, are handed to writers), and that
// the writers they held end or go idle once those clients are gone.
func TestEventWritersStalledClients(t *testing.T) {
	state := &HubState{writers: newEventWriters()}
	defer state.Close()
	h := &Handler{state: state}
	maxIdle := max(4, 2*runtime.GOMAXPROCS(0)) // newEventWriters'
	stalled := maxIdle + 2
	chunk := bytes.Repeat([]byte("x"), 256<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := newStreamCall(nil, nil, w)
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Path == "/live" {
			if err := h.write(sc, []byte("data: live\n\n")); err != nil {
				t.Errorf("writing to a client that reads: %v", err)
			}
			return
		}
		// Until the client is gone: once the connection's buffers are
		// full, a write blocks, and holds its writer.
		for h.write(sc, chunk) == nil {
		}
	}))
	defer srv.Close()

	var conns []net.Conn
	for range stalled {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "every stalled client to hold a writer", func() bool {
		running, idle := state.writers.Goroutines()
		return running-idle >= stalled
	})

	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(srv.URL + "/live")
	if err != nil {
		t.Fatalf("a client that reads, beside %d that do not: %v", stalled, err)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	res.Body.Close()
	if err != nil || strings.TrimSpace(line) != "data: live" {
		t.Fatalf("a client that reads got %q, %v", line, err)
	}

	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "the stalled writers to end or go idle", func() bool {
		running, idle := state.writers.Goroutines()
		return running <= maxIdle && running == idle
	})
	state.Close()
	state.writers.Wait()
	if running, _ := state.writers.Goroutines(); running != 0 {
		t.Fatalf("%d writers after Close", running)
	}
}

// waitFor waits up to 10 s for cond, which tests the outcome of work on
// other goroutines that signal nothing the test can wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
