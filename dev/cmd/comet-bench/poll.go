package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"
)

// poller performs a reader's GETs, one at a time.
type poller interface {
	// get GETs path (under the target's base) with header's fields added
	// (nil for none), leaves the body in body and returns the reply's
	// status and header fields. onWritten, if not nil, is called once the
	// request has been written.
	get(ctx context.Context, path string, header http.Header, body *bytes.Buffer, onWritten func()) (status int, replyHeader http.Header, err error)
	// open GETs path as get does, for an event stream: it returns once the
	// reply's header has arrived, with its body to be read as the server
	// writes it. A read that waits longer than the read timeout fails, and
	// closing the body ends the stream (and its connection).
	open(ctx context.Context, path string, header http.Header, onWritten func()) (status int, body io.ReadCloser, err error)
	close()
}

// httpPoller uses a net/http client: the reference against which leanPoller
// can be checked (-client net/http).
type httpPoller struct{ ep *endpoint }

func (p httpPoller) get(ctx context.Context, path string, header http.Header, body *bytes.Buffer, onWritten func()) (int, http.Header, error) {
	req, err := p.request(ctx, path, header, onWritten)
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.ep.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body.Reset()
	_, err = body.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header, err
}

func (p httpPoller) request(ctx context.Context, path string, header http.Header, onWritten func()) (*http.Request, error) {
	if onWritten != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { onWritten() },
		})
	}
	req, err := p.ep.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return req, nil
}

func (p httpPoller) close() {}

// leanDialer opens the connections of lean pollers.
type leanDialer struct {
	addr    string // host:port to dial
	host    string // Host header
	prefix  string // the base URL's path, prepended to every request path
	tls     *tls.Config
	header  []byte // extra request header lines, each ending in CRLF
	timeout time.Duration
	dialer  net.Dialer
	slots   chan struct{} // caps concurrent dials; nil for no cap
}

func newLeanDialer(ep *endpoint, readTimeout time.Duration, dialSlots int, insecure bool) (*leanDialer, error) {
	u, err := url.Parse(ep.base)
	if err != nil {
		return nil, err
	}
	d := &leanDialer{
		addr: u.Host, host: u.Host, prefix: u.EscapedPath(), timeout: readTimeout,
		dialer: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		d.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		d.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: insecure, NextProtos: []string{"http/1.1"}}
	}
	var hb bytes.Buffer
	if err := ep.header.Write(&hb); err != nil {
		return nil, err
	}
	d.header = hb.Bytes()
	if dialSlots > 0 {
		d.slots = make(chan struct{}, dialSlots)
	}
	return d, nil
}

func (d *leanDialer) dial(ctx context.Context) (net.Conn, error) {
	if d.slots != nil {
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-d.slots }()
	}
	c, err := d.dialer.DialContext(ctx, "tcp", d.addr)
	if err != nil || d.tls == nil {
		return c, err
	}
	tc := tls.Client(c, d.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// leanPoller is a reader's own HTTP/1.1 connection. The tool shares two
// cores with the server here, so whatever CPU the readers burn is taken
// from the server and shows up as latency: net/http's client costs about
// two goroutines, several channel hand-offs and a dozen allocations per
// request on top of the syscalls, which for thousands of held reads is as
// much CPU as the server's own work. This keeps one goroutine and one
// connection per reader and still parses replies with net/http's own
// ReadResponse.
type leanPoller struct {
	d    *leanDialer
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func newLeanPoller(d *leanDialer) *leanPoller { return &leanPoller{d: d} }

// aLongTimeAgo is a deadline that unblocks any pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

func (p *leanPoller) get(ctx context.Context, path string, header http.Header, body *bytes.Buffer, onWritten func()) (int, http.Header, error) {
	// A kept-alive connection the server has closed fails on first use;
	// that is not an error of the server's, so such a request is sent once
	// more on a new connection.
	for attempt := 0; ; attempt++ {
		reused := p.conn != nil
		status, h, err := p.try(ctx, path, header, body, onWritten)
		if err == nil || !reused || attempt > 0 || ctx.Err() != nil || !errors.Is(err, errConnGone) {
			return status, h, err
		}
	}
}

// errConnGone: the connection was closed before the reply started.
var errConnGone = errors.New("connection closed before the reply")

func (p *leanPoller) try(ctx context.Context, path string, header http.Header, body *bytes.Buffer, onWritten func()) (int, http.Header, error) {
	// Cancelling ctx unblocks the read by moving the deadline; the
	// timeout bounds a read the server never answers.
	resp, stop, err := p.roundTrip(ctx, path, header, onWritten)
	defer stop()
	if err != nil {
		return 0, nil, err
	}
	body.Reset()
	_, err = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		p.close()
	}
	return resp.StatusCode, resp.Header, err
}

// roundTrip writes a GET on the reader's connection (dialling it first if
// there is none) and reads the reply's header. The connection's deadline is
// the read timeout from now, and moves to the past when ctx ends; stop
// (never nil) ends that watch on ctx. On an error the connection is closed.
func (p *leanPoller) roundTrip(ctx context.Context, path string, header http.Header, onWritten func()) (resp *http.Response, stop func() bool, err error) {
	stop = func() bool { return false }
	if p.conn == nil {
		c, err := p.d.dial(ctx)
		if err != nil {
			return nil, stop, err
		}
		p.conn = c
		if p.br == nil {
			p.br = bufio.NewReaderSize(c, 4096)
		} else {
			p.br.Reset(c)
		}
	}
	conn := p.conn
	stop = context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	if err := conn.SetDeadline(time.Now().Add(p.d.timeout)); err != nil {
		p.close()
		return nil, stop, err
	}

	p.req = append(p.req[:0], "GET "...)
	p.req = append(p.req, p.d.prefix...)
	p.req = append(p.req, path...)
	p.req = append(p.req, " HTTP/1.1\r\nHost: "...)
	p.req = append(p.req, p.d.host...)
	p.req = append(p.req, "\r\nUser-Agent: comet-bench\r\n"...)
	p.req = append(p.req, p.d.header...)
	for k, vs := range header {
		for _, v := range vs {
			p.req = append(p.req, k...)
			p.req = append(p.req, ": "...)
			p.req = append(p.req, v...)
			p.req = append(p.req, "\r\n"...)
		}
	}
	p.req = append(p.req, "\r\n"...)
	if _, err := p.conn.Write(p.req); err != nil {
		p.close()
		return nil, stop, fmt.Errorf("%w: %w", errConnGone, err)
	}
	if onWritten != nil {
		onWritten()
	}
	if _, err := p.br.Peek(1); err != nil {
		p.close()
		if errors.Is(err, io.EOF) {
			return nil, stop, fmt.Errorf("%w: %w", errConnGone, err)
		}
		return nil, stop, err
	}
	resp, err = http.ReadResponse(p.br, nil)
	if err != nil {
		p.close()
		return nil, stop, err
	}
	return resp, stop, nil
}

func (p *leanPoller) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}
