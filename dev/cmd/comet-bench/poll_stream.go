package main

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Event streams (-transport sse): one GET whose reply never ends, read as
// the server writes it. Both clients open them; the read timeout then bounds
// the wait for the next bytes (a heartbeat or an event), not the whole reply.

func (p *leanPoller) open(ctx context.Context, path string, header http.Header, onWritten func()) (int, io.ReadCloser, error) {
	resp, stop, err := p.roundTrip(ctx, path, header, onWritten)
	if err != nil {
		stop()
		return 0, nil, err
	}
	return resp.StatusCode, &leanStream{p: p, ctx: ctx, body: resp.Body, stop: stop}, nil
}

// leanStream is the body of a lean poller's stream. The connection is not
// reused after it: closing the stream closes the connection.
type leanStream struct {
	p    *leanPoller
	ctx  context.Context
	body io.ReadCloser
	stop func() bool
}

func (s *leanStream) Read(b []byte) (int, error) {
	// Each read gets the whole read timeout. Moving the deadline could
	// undo the move to the past that ends the stream when ctx ends, so
	// that is checked again after it.
	conn := s.p.conn
	if conn == nil {
		return 0, io.ErrClosedPipe
	}
	if err := conn.SetDeadline(time.Now().Add(s.p.d.timeout)); err != nil {
		return 0, err
	}
	if s.ctx.Err() != nil {
		conn.SetDeadline(aLongTimeAgo)
	}
	return s.body.Read(b)
}

func (s *leanStream) Close() error {
	s.stop()
	// The connection goes first: closing a chunked body reads it to its
	// end, which a stream does not have.
	s.p.close()
	return s.body.Close()
}

func (p httpPoller) open(ctx context.Context, path string, header http.Header, onWritten func()) (int, io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := p.request(ctx, path, header, onWritten)
	if err != nil {
		cancel()
		return 0, nil, err
	}
	// The client's Timeout covers the whole reply, which a stream does not
	// finish: the transport is used directly, and a watchdog, pushed back
	// by every read, cancels the request when the server goes quiet.
	timeout := p.ep.client.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	watchdog := time.AfterFunc(timeout, cancel)
	resp, err := p.ep.client.Transport.RoundTrip(req)
	if err != nil {
		watchdog.Stop()
		cancel()
		return 0, nil, err
	}
	return resp.StatusCode, &httpStream{body: resp.Body, watchdog: watchdog, timeout: timeout, cancel: cancel}, nil
}

// httpStream is the body of a net/http stream.
type httpStream struct {
	body     io.ReadCloser
	watchdog *time.Timer
	timeout  time.Duration
	cancel   context.CancelFunc
	once     sync.Once
}

func (s *httpStream) Read(b []byte) (int, error) {
	s.watchdog.Reset(s.timeout)
	return s.body.Read(b)
}

func (s *httpStream) Close() error {
	s.once.Do(func() {
		s.watchdog.Stop()
		s.cancel()
	})
	return s.body.Close()
}
