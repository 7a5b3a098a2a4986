package token

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/internal/offstack"
)

// Tokens the cache does not hold are verified on a few long-lived worker
// goroutines, not on the request's. Decoding a token and checking its
// signature take some 4 KiB of stack beyond the cached path: on the
// request's goroutine, under Caddy's and net/http's frames, that would
// double its stack (8 KiB to 16 KiB), and the read that follows would keep
// it doubled for as long as it is held (docs/design.md, "Verifying tokens
// off the request's stack").
//
// Each Verifier has workers of its own (an offstack.Runner), at most as
// many as the CPUs Go uses, since verifying is pure computation: they
// start with its verifications and stop when it is closed (the handler
// closes its verifier when its configuration is unloaded). When all are
// busy, requests wait their turn, which also bounds how much CPU a flood
// of tokens can take from the rest of the server; a request that ends
// while it waits stops waiting.

// newWorkers returns a verifier's workers; they start with its first
// verification.
func newWorkers() *offstack.Runner {
	return offstack.New(0, max(runtime.GOMAXPROCS(0), 2))
}

// job is one verification handed to a worker.
type job struct {
	v     *Verifier
	token string
	now   time.Time
	done  chan verdict // room for one: a worker never waits on it
	run   func()       // j.verify, made once per job rather than per use
}

var jobPool = sync.Pool{New: func() any {
	j := &job{done: make(chan verdict, 1)}
	j.run = j.verify
	return j
}}

func (j *job) verify() { j.done <- j.v.run(j.token, j.now) }

// Close stops the verifier's workers and waits for them to finish the
// verifications they have begun. The cache stays: a token it holds is
// still taken. A token it does not hold is verified on a goroutine of its
// own from then on, which only a request that outlives its handler's
// configuration does, as held reads are answered when the server shuts
// down. Close may be called more than once.
func (v *Verifier) Close() {
	v.workers.Close()
	v.workers.Wait()
}

// verifyOffStack verifies a token on a worker and returns what it found,
// or ctx's error when ctx ends first: while the token waits for a worker,
// or for its verdict (the worker then finishes it for no one).
func (v *Verifier) verifyOffStack(ctx context.Context, token string, now time.Time) (*Grant, error) {
	j := jobPool.Get().(*job)
	j.v, j.token, j.now = v, token, now
	if err := v.workers.Go(ctx, j.run); err != nil {
		j.release()
		return nil, err
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
	j.v, j.token, j.now = nil, "", time.Time{}
	jobPool.Put(j)
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
