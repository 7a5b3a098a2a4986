package comethttp

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// eventWriters write the events of a hub's event streams, on a few
// long-lived goroutines shared by all of them.
//
// A stream cannot write from its own goroutine: flushing in the middle of a
// response goes through net/http's chunked writer deep enough to double the
// goroutine's stack, which the stream would keep for as long as it is open
// (docs/design.md, "The stack budget of a held read"). A goroutine started
// per event avoids that, but a publish that wakes 500 streams then starts
// 500 goroutines at once, whose stacks Go keeps for reuse after they end:
// on 5,000 streams that cost more memory per stream than the streams'
// own goroutines (docs/design.md, "Event streams: shared writers").
//
// So a stream hands its event to an idle writer when there is one, and
// starts a new writer when there is none. A write that blocks (a client
// that stopped reading, until Caddy's write_idle_timeout ends it) holds
// only its own writer: the next event finds none idle and starts another,
// so no client can hold up other clients' events. A writer that finishes
// while maxIdle others are already idle ends, so the pool shrinks back
// after such a write.
type eventWriters struct {
	// jobs hands a stream's event to an idle writer. It is unbuffered: an
	// event is taken by a writer waiting for one, or by a new writer, and
	// never queues behind a write that blocks.
	jobs chan *streamCall
	// idle counts the writers waiting for an event; running all of them.
	idle, running atomic.Int32
	maxIdle       int32
	stop          chan struct{}
	stopOnce      sync.Once
}

func newEventWriters() *eventWriters {
	return &eventWriters{
		jobs: make(chan *streamCall),
		// Writes are CPU work on a connection that is ready: a couple of
		// writers per CPU keep every CPU writing while others switch.
		maxIdle: int32(max(4, 2*runtime.GOMAXPROCS(0))),
		stop:    make(chan struct{}),
	}
}

// write writes sc's pending event (streamCall.event) on a writer goroutine
// and returns the outcome. The response is never used by two goroutines at
// once: the stream's waits here while a writer uses it.
func (p *eventWriters) write(sc *streamCall) error {
	select {
	case p.jobs <- sc:
	default:
		p.running.Add(1)
		go p.work(sc)
	}
	return <-sc.written
}

// work writes sc's event, then others as streams hand them over, until
// maxIdle writers are idle without it or the pool closes.
func (p *eventWriters) work(sc *streamCall) {
	defer p.running.Add(-1)
	for {
		sc.writeNow()
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case sc = <-p.jobs:
			p.idle.Add(-1)
		case <-p.stop:
			p.idle.Add(-1)
			return
		}
	}
}

// close ends the idle writers, and each busy one once its write returns.
// A stream that writes after close gets a writer of its own, which ends
// after that write.
func (p *eventWriters) close() {
	p.stopOnce.Do(func() { close(p.stop) })
}
