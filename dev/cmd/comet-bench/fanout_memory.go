package main

import (
	"context"
	"fmt"
)

// The server's memory over a fan-out run: its RSS with -pid, its Go heap
// and goroutine stacks with -expvar, read before the readers connect, with
// them held, and (RSS) at the end.

// memoryBefore reads the server's memory before the readers connect.
func (r *fanoutRun) memoryBefore(ctx context.Context) error {
	cfg := r.cfg
	if cfg.PID > 0 {
		m, err := readServerMemory(cfg)
		if err != nil {
			return err
		}
		r.rep.Memory = &memoryReport{PID: cfg.PID, OtherPIDs: cfg.OtherPIDs, BeforeKiB: m.RSSKiB}
	}
	if cfg.Expvar != "" {
		u, err := checkBase(ctx, cfg.Expvar, cfg.AllowRemote)
		if err != nil {
			return fmt.Errorf("-expvar: %w", err)
		}
		m, err := readRuntimeMemory(ctx, r.pub.client, u)
		if err != nil {
			return fmt.Errorf("-expvar: %w", err)
		}
		r.rep.Runtime = &runtimeReport{URL: u, HeapBeforeKiB: int64(m.HeapInuse >> 10), StackBeforeKiB: int64(m.StackInuse >> 10)}
	}
	return nil
}

// memoryHeld reads it with every reader held, and divides the growth by the
// readers.
func (r *fanoutRun) memoryHeld(ctx context.Context) error {
	readers := float64(r.cfg.Readers)
	if mem := r.rep.Memory; mem != nil {
		m, err := readServerMemory(r.cfg)
		if err != nil {
			return err
		}
		mem.HeldKiB = m.RSSKiB
		mem.PerHeldReadKiB = float64(m.RSSKiB-mem.BeforeKiB) / readers
	}
	if rt := r.rep.Runtime; rt != nil {
		m, err := readRuntimeMemory(ctx, r.pub.client, rt.URL)
		if err != nil {
			return fmt.Errorf("-expvar: %w", err)
		}
		rt.HeapHeldKiB, rt.StackHeldKiB = int64(m.HeapInuse>>10), int64(m.StackInuse>>10)
		rt.HeapPerHeldReadKiB = float64(rt.HeapHeldKiB-rt.HeapBeforeKiB) / readers
		rt.StackPerHeldReadKiB = float64(rt.StackHeldKiB-rt.StackBeforeKiB) / readers
	}
	return nil
}

// memoryEnd reads the RSS and its peak after the drain.
func (r *fanoutRun) memoryEnd() {
	mem := r.rep.Memory
	if mem == nil {
		return
	}
	if m, err := readServerMemory(r.cfg); err == nil {
		mem.EndKiB, mem.PeakKiB = m.RSSKiB, m.PeakKiB
	} else {
		// The server died during the run: worth saying, not fatal.
		mem.EndError = err.Error()
	}
}

// readServerMemory reads the memory of the server's processes: -pid's, and
// the sum over them when there are several (nginx's master and workers).
// Pages that several of them map (nginx's shared memory zone, its code)
// count once per process that has them resident, as RSS counts them.
func readServerMemory(cfg fanoutConfig) (procMemory, error) {
	sum, err := readProcMemory(cfg.PID)
	if err != nil {
		return sum, err
	}
	for _, pid := range cfg.OtherPIDs {
		m, err := readProcMemory(pid)
		if err != nil {
			return sum, err
		}
		sum.RSSKiB += m.RSSKiB
		sum.PeakKiB += m.PeakKiB
	}
	return sum, nil
}
