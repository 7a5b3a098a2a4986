package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A stat file as Linux writes it: the command in parentheses (which may
// hold spaces and parentheses), then utime and stime, the 14th and 15th
// fields, in clock ticks (procfs takes 100 per second, Linux's USER_HZ).
func TestReadProcCPUFromStat(t *testing.T) {
	proc := t.TempDir()
	dir := filepath.Join(proc, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "42 (caddy (bench)) S 1 42 42 0 -1 4194560 100 0 0 0 250 130 7 3 20 0 9 0 100 1000000 2000 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := readProcCPUAt(proc, 42)
	if err != nil || s != 3.8 {
		t.Errorf("readProcCPUAt = %v, %v; want 3.8 s (250 + 130 ticks, children's left out)", s, err)
	}
	if _, err := readProcCPUAt(proc, 43); err == nil {
		t.Error("a missing process gave a CPU time")
	}
}

// With -pid, the report has the server's CPU time over the deliveries of
// the run. The fake server runs in the test's process, so the figure is the
// test's own; what is checked is that it is taken and divided by what was
// delivered.
func TestFanoutReportsServerCPU(t *testing.T) {
	srv := httptest.NewServer(newFakeCometSSE(1000, time.Second))
	defer srv.Close()
	cfg := fanoutConfig{
		targetConfig: targetConfig{Target: srv.URL}, Transport: transportSSE,
		Prefix: "cpu", Channels: 2, Readers: 4, PerRead: 1, Messages: 20, Rate: 200, Publishers: 1,
		Duration: time.Minute, Drain: 10 * time.Second, SetupTimeout: 10 * time.Second,
		Settle: 50 * time.Millisecond, ReadTimeout: 10 * time.Second, PID: os.Getpid(),
	}
	rep, err := runFanout(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.CPU
	if c == nil || c.Error != "" || c.Deliveries != rep.Delivered || rep.Delivered != 40 || c.Seconds < 0 {
		t.Fatalf("cpu report %+v with %d delivered; want the 40 deliveries and a CPU time", c, rep.Delivered)
	}
	if want := c.Seconds * 1e6 / 40; c.PerDeliveryUS != want {
		t.Errorf("per delivery %v us, want %v", c.PerDeliveryUS, want)
	}
}
