package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/procfs"
)

// procMemory is a process's memory as /proc/<pid>/status reports it.
type procMemory struct {
	// RSSKiB is VmRSS: resident memory now.
	RSSKiB int64
	// PeakKiB is VmHWM: the most resident memory so far.
	PeakKiB int64
}

// readProcMemory reads VmRSS and VmHWM of a process from
// /proc/<pid>/status (Linux only).
func readProcMemory(pid int) (procMemory, error) {
	return readProcMemoryAt(procfs.DefaultMountPoint, pid)
}

// readProcMemoryAt is readProcMemory with procfs mounted at mount, so that
// tests can hand it a status file of their own.
func readProcMemoryAt(mount string, pid int) (procMemory, error) {
	fail := func(err error) (procMemory, error) {
		return procMemory{}, fmt.Errorf("reading the memory of pid %d: %w", pid, err)
	}
	p, err := procAt(mount, pid)
	if err != nil {
		return fail(err)
	}
	s, err := p.NewStatus()
	if err != nil {
		return fail(err)
	}
	if s.VmRSS == 0 {
		// Kernel threads and zombies have no Vm lines (procfs leaves
		// them 0); a running user process always has resident pages.
		return fail(errors.New("no VmRSS (is it a running user process?)"))
	}
	return procMemory{RSSKiB: int64(s.VmRSS >> 10), PeakKiB: int64(s.VmHWM >> 10)}, nil
}

// memoryReport is the server's memory over a fan-out run.
type memoryReport struct {
	PID int `json:"pid"`
	// OtherPIDs are the server's other processes, whose figures are added
	// in (PeakKiB then sums each process's own peak).
	OtherPIDs []int `json:"other_pids,omitempty"`
	// BeforeKiB is the server's RSS before the readers connected.
	BeforeKiB int64 `json:"before_kib"`
	// HeldKiB is its RSS with every reader held, before any publish.
	HeldKiB int64 `json:"held_kib"`
	// EndKiB is its RSS after the last message was delivered, readers
	// still connected.
	EndKiB int64 `json:"end_kib"`
	// PeakKiB is its VmHWM at the end: the most it ever held.
	PeakKiB int64 `json:"peak_kib"`
	// EndError says why EndKiB and PeakKiB are missing (the server exited
	// during the run).
	EndError string `json:"end_error,omitempty"`
	// PerHeldReadKiB is (HeldKiB - BeforeKiB) / readers.
	PerHeldReadKiB float64 `json:"per_held_read_kib"`
}

// runtimeMemory is a Go server's heap and stack in use, from the memstats
// its expvar handler publishes (Caddy's admin endpoint serves it at
// /debug/vars). It splits what RSS lumps together: the heap (buffers,
// request state) and the goroutine stacks of held requests.
type runtimeMemory struct {
	HeapInuse  uint64
	StackInuse uint64
}

func readRuntimeMemory(ctx context.Context, c *http.Client, url string) (runtimeMemory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return runtimeMemory{}, fmt.Errorf("reading %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return runtimeMemory{}, fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return runtimeMemory{}, fmt.Errorf("reading %s: HTTP %d", url, resp.StatusCode)
	}
	var v struct {
		Memstats *runtimeMemory `json:"memstats"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&v); err != nil {
		return runtimeMemory{}, fmt.Errorf("reading %s: %w", url, err)
	}
	if v.Memstats == nil {
		return runtimeMemory{}, fmt.Errorf("reading %s: no memstats (is it a Go expvar endpoint?)", url)
	}
	return *v.Memstats, nil
}

// runtimeReport is the server's heap and stack over a fan-out run.
type runtimeReport struct {
	URL string `json:"url"`
	// HeapBeforeKiB and StackBeforeKiB are before the readers connected;
	// HeapHeldKiB and StackHeldKiB with every reader held. The heap
	// figures include garbage not yet collected.
	HeapBeforeKiB  int64 `json:"heap_before_kib"`
	HeapHeldKiB    int64 `json:"heap_held_kib"`
	StackBeforeKiB int64 `json:"stack_before_kib"`
	StackHeldKiB   int64 `json:"stack_held_kib"`
	// HeapPerHeldReadKiB and StackPerHeldReadKiB divide the growth by the
	// number of readers.
	HeapPerHeldReadKiB  float64 `json:"heap_per_held_read_kib"`
	StackPerHeldReadKiB float64 `json:"stack_per_held_read_kib"`
}

// procAt opens process pid of the procfs mounted at mount.
func procAt(mount string, pid int) (procfs.Proc, error) {
	fs, err := procfs.NewFS(mount)
	if err != nil {
		return procfs.Proc{}, err
	}
	return fs.Proc(pid)
}
