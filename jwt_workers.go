package comet

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

// Tokens the cache does not hold are verified on a few long-lived worker
// goroutines, not on the request's. Decoding a token and checking its
// signature take some 4 KiB of stack beyond the cached path: on the
// request's goroutine, under Caddy's and net/http's frames, that would
// double its stack (8 KiB to 16 KiB), and the read that follows would keep
// it doubled for as long as it is held. A goroutine per verification would
// grow a fresh stack each time, which costs as much as an HS256
// verification itself; the workers' stacks have grown once and stay.
//
// The workers are shared by every route and live as long as the process:
// as many as the CPUs Go uses, since verifying is pure computation. When
// all are busy, requests wait their turn, which also bounds how much CPU a
// flood of tokens can take from the rest of the server.

// verifyJob is one verification handed to a worker.
type verifyJob struct {
	j     *JWT
	token string
	now   time.Time
	done  chan verdict
}

var (
	verifyJobs     chan *verifyJob
	startVerifiers sync.Once
	verifyJobPool  = sync.Pool{New: func() any { return &verifyJob{done: make(chan verdict, 1)} }}
)

// verifyOffStack verifies a token on a worker and returns what it found.
func verifyOffStack(j *JWT, token string, now time.Time) (*grant, *hub.Error) {
	startVerifiers.Do(func() {
		verifyJobs = make(chan *verifyJob)
		for range max(runtime.GOMAXPROCS(0), 2) {
			go verifier()
		}
	})
	job := verifyJobPool.Get().(*verifyJob)
	job.j, job.token, job.now = j, token, now
	verifyJobs <- job
	v := <-job.done
	*job = verifyJob{done: job.done} // keep no token in the pool
	verifyJobPool.Put(job)
	return v.grant, v.err
}

// verifier runs verifications for as long as the process lives.
func verifier() {
	for job := range verifyJobs {
		job.done <- job.run()
	}
}

// run verifies the job's token. A panic on the request's goroutine would
// cost Caddy one request; on a worker it would end the process, so it is
// recovered here and the token refused, though the verify path is fuzzed
// not to panic.
func (job *verifyJob) run() (v verdict) {
	defer func() {
		if r := recover(); r != nil {
			job.j.logger.Error("verifying a token panicked; refusing it", zap.String("panic", fmt.Sprint(r)))
			v = verdict{err: errTokenMalformed}
		}
	}()
	return job.j.verifyNow(job.token, job.now)
}
