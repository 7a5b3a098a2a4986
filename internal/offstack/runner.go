// Package offstack runs work on long-lived goroutines whose stacks have
// grown once and stay grown, so that deep work (a network store's call, a
// token's verification, an event's chunked write and flush) does not grow
// the stack of a goroutine that then parks for a long time: a held read's
// request goroutine keeps every byte of stack it grew for as long as it is
// held (docs/design.md, "The stack budget of a held read"). A goroutine per
// call would do as well for the stack, but grows a fresh stack each time,
// and after a burst (one publish waking 500 streams) Go keeps that many
// stacks for reuse.
//
// It is the one way work leaves a request's stack in this module. Each
// Runner has an owner that closes it: a hub its store reads', a hub's HTTP
// state its event writes', a token verifier its verifications'.
package offstack

import (
	"context"
	"sync"
	"sync/atomic"
)

// Runner runs functions on goroutines of its own. It hands a function to
// one of its goroutines that is idle, and starts a new one when none is
// (or, when it is bounded, when fewer than its bound are running; else the
// caller waits its turn). A goroutine that finishes while enough others
// are idle ends, so a runner that grew for a burst shrinks back.
//
// A function that blocks (a write to a client that stopped reading) holds
// only its own goroutine: the next call finds none idle and starts
// another, so on an unbounded runner no call waits behind another.
type Runner struct {
	// jobs hands a function to an idle goroutine. It is unbuffered: a
	// function is taken by a goroutine that waits for one, or by a new
	// goroutine, and never queues behind one that blocks.
	jobs chan func()
	// slots holds a token per running goroutine when the runner is
	// bounded; nil when it is not.
	slots   chan struct{}
	maxIdle int32
	// idle counts the goroutines waiting for a function, running all of
	// them.
	idle, running atomic.Int32

	mu     sync.Mutex // guards closed and wg.Add against Close and Wait
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// New returns a runner that keeps up to maxIdle goroutines waiting for work
// (at least 1). With maxRunning above 0 it runs at most that many at once
// and keeps all of them (maxIdle is then maxRunning); with 0 it runs as
// many as callers need at once.
func New(maxIdle, maxRunning int) *Runner {
	r := &Runner{jobs: make(chan func()), stop: make(chan struct{}), maxIdle: int32(max(maxIdle, 1))}
	if maxRunning > 0 {
		r.slots = make(chan struct{}, maxRunning)
		r.maxIdle = int32(maxRunning)
	}
	return r
}

// Go runs fn on one of the runner's goroutines and returns without waiting
// for it. On a bounded runner with every goroutine busy it waits for one to
// be free, or for ctx to end: it then returns ctx's error and fn does not
// run. After Close, fn runs on a goroutine of its own, which ends with it.
//
// fn must not panic: a panic on the runner's goroutine ends the process.
func (r *Runner) Go(ctx context.Context, fn func()) error {
	select {
	case r.jobs <- fn:
		return nil
	default:
	}
	if r.slots != nil {
		select {
		case r.jobs <- fn:
			return nil
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stop:
			go fn()
			return nil
		}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.releaseSlot()
		go fn()
		return nil
	}
	r.wg.Add(1)
	r.running.Add(1)
	r.mu.Unlock()
	go r.work(fn)
	return nil
}

// work runs fn, then the functions handed to it, until enough other
// goroutines are idle or the runner closes.
func (r *Runner) work(fn func()) {
	defer r.wg.Done()
	defer r.releaseSlot()
	defer r.running.Add(-1)
	for {
		fn()
		if r.idle.Add(1) > r.maxIdle {
			r.idle.Add(-1)
			return
		}
		select {
		case fn = <-r.jobs:
			r.idle.Add(-1)
		case <-r.stop:
			r.idle.Add(-1)
			return
		}
	}
}

func (r *Runner) releaseSlot() {
	if r.slots != nil {
		<-r.slots
	}
}

// Close ends the idle goroutines, and each busy one once its function
// returns; it does not wait for them (Wait does). Close may be called more
// than once.
func (r *Runner) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
}

// Wait waits, after Close, for the runner's goroutines to end: for the
// functions they had begun to return.
func (r *Runner) Wait() {
	r.wg.Wait()
}

// Goroutines returns how many goroutines the runner has now, and how many of
// them wait for work.
func (r *Runner) Goroutines() (running, idle int) {
	return int(r.running.Load()), int(r.idle.Load())
}
