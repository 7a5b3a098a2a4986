package main

import (
	"context"
	"expvar"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A status file as Linux writes it: sizes in kB, VmHWM before VmRSS.
func TestReadProcMemoryFromStatus(t *testing.T) {
	proc := t.TempDir()
	writeStatus(t, proc, 42, "Name:\tcaddy\nVmPeak:\t 1300000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n")
	m, err := readProcMemoryAt(proc, 42)
	if err != nil || m != (procMemory{RSSKiB: 102400, PeakKiB: 204800}) {
		t.Errorf("readProcMemoryAt = %+v, %v; want RSS 102400 KiB, peak 204800 KiB", m, err)
	}
	// A kernel thread has no Vm lines: no figure rather than 0 KiB.
	writeStatus(t, proc, 2, "Name:\tkthreadd\nThreads:\t1\n")
	if _, err := readProcMemoryAt(proc, 2); err == nil || !strings.Contains(err.Error(), "no VmRSS") {
		t.Errorf("status without VmRSS: %v, want a no VmRSS error", err)
	}
}

func writeStatus(t *testing.T, proc string, pid int, status string) {
	t.Helper()
	dir := filepath.Join(proc, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadProcMemoryOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system: -pid works on Linux only")
	}
	m, err := readProcMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKiB <= 0 || m.PeakKiB < m.RSSKiB {
		t.Errorf("own memory = %+v: want RSS > 0 and peak >= RSS", m)
	}
	if _, err := readProcMemory(1 << 30); err == nil || !strings.Contains(err.Error(), "pid") {
		t.Errorf("memory of a pid that cannot exist: %v", err)
	}
}

func TestReadRuntimeMemory(t *testing.T) {
	srv := httptest.NewServer(expvar.Handler())
	defer srv.Close()
	m, err := readRuntimeMemory(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapInuse == 0 || m.StackInuse == 0 {
		t.Errorf("memstats of this process = %+v, want heap and stack in use", m)
	}
	notExpvar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"return_code":1}`))
	}))
	defer notExpvar.Close()
	if _, err := readRuntimeMemory(context.Background(), notExpvar.Client(), notExpvar.URL); err == nil ||
		!strings.Contains(err.Error(), "no memstats") {
		t.Errorf("reading memstats from a URL without them: %v", err)
	}
}
