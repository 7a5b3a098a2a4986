package token

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Tokens the cache does not hold are verified on a few long-lived worker
// goroutines, not on the request's. Decoding a token and checking its
// signature take some 4 KiB of stack beyond the cached path: on the
// request's goroutine, under Caddy's and net/http's frames, that would
// double its stack (8 KiB to 16 KiB), and the read that follows would keep
// it doubled for as long as it is held (docs/design.md, "The stack budget
// of a held read"). A goroutine per verification would grow a fresh stack
// each time, which costs as much as an HS256 verification itself; the
// workers' stacks have grown once and stay.
//
// Each Verifier has workers of its own, as many as the CPUs Go uses, since
// verifying is pure computation: they start with its first verification
// and stop when it is closed (the handler closes its verifier when its
// configuration is unloaded). When all are busy, requests wait their turn,
// which also bounds how much CPU a flood of tokens can take from the rest
// of the server; a request that ends while it waits stops waiting.

// workers are a Verifier's worker goroutines.
type workers struct {
	mu     sync.Mutex
	jobs   chan *job     // nil until the first job
	stop   chan struct{} // closed by Close
	closed bool
	wg     sync.WaitGroup
}

// job is one verification handed to a worker.
type job struct {
	token string
	now   time.Time
	done  chan verdict // room for one: a worker never waits on it
}

var jobPool = sync.Pool{New: func() any { return &job{done: make(chan verdict, 1)} }}

// start returns the workers' queue and their stop channel, starting the
// workers on the first call; nil once the verifier is closed.
func (w *workers) start(v *Verifier) (chan<- *job, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, nil
	}
	if w.jobs == nil {
		w.jobs, w.stop = make(chan *job), make(chan struct{})
		n := max(runtime.GOMAXPROCS(0), 2)
		w.wg.Add(n)
		for range n {
			go v.work(w.jobs, w.stop)
		}
	}
	return w.jobs, w.stop
}

// Close stops the verifier's workers and waits for them to finish the
// verifications they have begun. The cache stays: a token it holds is
// still taken. A token it does not hold is verified on the goroutine that
// asks from then on, which only a request that outlives its handler's
// configuration does, as held reads are answered when the server shuts
// down. Close may be called more than once.
func (v *Verifier) Close() {
	w := &v.workers
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		if w.stop != nil {
			close(w.stop)
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// verifyOffStack verifies a token on a worker and returns what it found,
// or ctx's error when ctx ends first: while the token waits for a worker,
// or for its verdict (the worker then finishes it for no one).
func (v *Verifier) verifyOffStack(ctx context.Context, token string, now time.Time) (*Grant, error) {
	jobs, stop := v.workers.start(v)
	if jobs == nil {
		return v.run(token, now).result() // closed
	}
	j := jobPool.Get().(*job)
	j.token, j.now = token, now
	select {
	case jobs <- j:
	case <-ctx.Done():
		j.release()
		return nil, ctx.Err()
	case <-stop:
		j.release()
		return v.run(token, now).result()
	}
	select {
	case d := <-j.done:
		j.release()
		return d.result()
	case <-ctx.Done():
		// The worker has the job and will send its verdict: the job is
		// left to it, not put back for another request.
		return nil, ctx.Err()
	}
}

// release puts a job whose verdict has been taken back in the pool,
// keeping no token there.
func (j *job) release() {
	*j = job{done: j.done}
	jobPool.Put(j)
}

// work runs verifications until stop is closed.
func (v *Verifier) work(jobs <-chan *job, stop <-chan struct{}) {
	defer v.workers.wg.Done()
	for {
		select {
		case j := <-jobs:
			j.done <- v.run(j.token, j.now)
		case <-stop:
			return
		}
	}
}

// run verifies a token. A panic on the request's goroutine would cost
// Caddy one request; on a worker it would end the process, so it is
// recovered here and the token refused, though the verify path is fuzzed
// not to panic.
func (v *Verifier) run(token string, now time.Time) (d verdict) {
	defer func() {
		if r := recover(); r != nil {
			v.logger.Error("verifying a token panicked; refusing it", zap.String("panic", fmt.Sprint(r)))
			d = verdict{err: ErrMalformed}
		}
	}()
	return v.verifyNow(token, now)
}
