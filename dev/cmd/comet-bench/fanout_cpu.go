package main

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// The server's CPU time over a fan-out run (-pid): what its processes spent
// from the first publish to the end of the drain, the part of the run that
// delivers, over the deliveries it made. Connecting the readers is left out:
// it is setup, not fan-out.

// cpuReport is the server's CPU time while the run published and drained.
type cpuReport struct {
	// Seconds is user plus system time of every -pid process in that
	// window.
	Seconds float64 `json:"seconds"`
	// Deliveries is the messages the readers received in it (warm-up
	// included: it is published in the same window).
	Deliveries int64 `json:"deliveries"`
	// PerDeliveryUS is Seconds over Deliveries, in microseconds.
	PerDeliveryUS float64 `json:"per_delivery_us"`
	// Error says why the figure is missing (a process exited during the
	// run).
	Error string `json:"error,omitempty"`
}

// readProcCPU reads the user plus system CPU time of a process, in seconds,
// from /proc/<pid>/stat (Linux only).
func readProcCPU(pid int) (float64, error) {
	return readProcCPUAt(procfs.DefaultMountPoint, pid)
}

// readProcCPUAt is readProcCPU with procfs mounted at mount, so that tests
// can hand it a stat file of their own.
func readProcCPUAt(mount string, pid int) (float64, error) {
	fail := func(err error) (float64, error) {
		return 0, fmt.Errorf("reading the CPU time of pid %d: %w", pid, err)
	}
	p, err := procAt(mount, pid)
	if err != nil {
		return fail(err)
	}
	s, err := p.Stat()
	if err != nil {
		return fail(err)
	}
	return s.CPUTime(), nil
}

// readServerCPU sums the CPU time of the server's processes (-pid): nginx's
// master and workers count together, as their memory does.
func readServerCPU(cfg fanoutConfig) (float64, error) {
	total, err := readProcCPU(cfg.PID)
	if err != nil {
		return 0, err
	}
	for _, pid := range cfg.OtherPIDs {
		s, err := readProcCPU(pid)
		if err != nil {
			return 0, err
		}
		total += s
	}
	return total, nil
}

// cpuStart reads the server's CPU time as publishing starts. A failure is
// kept for the report rather than failing the run: the server was readable
// a moment ago, at memoryBefore.
func (r *fanoutRun) cpuStart() {
	if r.cfg.PID == 0 {
		return
	}
	r.rep.CPU = &cpuReport{}
	s, err := readServerCPU(r.cfg)
	if err != nil {
		r.rep.CPU.Error = err.Error()
		return
	}
	r.cpuBefore = s
}

// cpuEnd reads it again after the drain; cpuPerDelivery divides once the
// deliveries are counted.
func (r *fanoutRun) cpuEnd() {
	c := r.rep.CPU
	if c == nil || c.Error != "" {
		return
	}
	s, err := readServerCPU(r.cfg)
	if err != nil {
		c.Error = err.Error()
		return
	}
	c.Seconds = s - r.cpuBefore
}

func (r *fanoutRun) cpuPerDelivery() {
	c := r.rep.CPU
	if c == nil || c.Error != "" {
		return
	}
	c.Deliveries = r.rep.Delivered
	if c.Deliveries > 0 {
		c.PerDeliveryUS = c.Seconds * 1e6 / float64(c.Deliveries)
	}
}
