package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// reply is every field the comet API answers with that the tool reads.
type reply struct {
	Since        int64                     `json:"since"`
	Messages     map[string][]replyMessage `json:"messages"`
	LastID       int64                     `json:"last_id"`
	MessageID    int64                     `json:"message_id"`
	ReturnCode   int                       `json:"return_code"`
	ErrorMessage string                    `json:"error_message"`
	Status       *struct {
		HeldConnectionsCount int64 `json:"held_connections_count"`
	} `json:"status"`
}

type replyMessage struct {
	Content string `json:"content"`
	ID      int64  `json:"id"`
}

// decodeReply decodes a .json reply, with or without quote_json's
// "/*-secure- ... */" wrapping, so the tool works against either setting.
func decodeReply(body []byte) (reply, error) {
	var r reply
	b := bytes.TrimSpace(body)
	if rest, ok := bytes.CutPrefix(b, []byte("/*-secure-")); ok {
		b, _ = bytes.CutSuffix(bytes.TrimSpace(rest), []byte("*/"))
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding reply %q: %w", abbreviate(body), err)
	}
	return r, nil
}

func abbreviate(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

// apiError is a reply that is not a success: an HTTP status other than 200
// or a negative return_code.
type apiError struct {
	Status  int
	Code    int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d, return_code %d: %s", e.Status, e.Code, e.Message)
}

// errorKind names an error for the "errors by kind" counts: the HTTP status
// or return code for API errors, a short class for transport errors.
func errorKind(err error) string {
	var ae *apiError
	var ne net.Error
	var cd *centrifugoDisconnect
	switch {
	case errors.As(err, &cd):
		return "disconnect_" + strconv.Itoa(cd.Code)
	case errors.As(err, &ae) && ae.Status != http.StatusOK:
		return "http_" + strconv.Itoa(ae.Status)
	case errors.As(err, &ae):
		return "return_code_" + strconv.Itoa(ae.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errBadReply):
		return "bad_reply"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection_closed"
	case isErrno(err, "connection refused"):
		return "connection_refused"
	case isErrno(err, "connection reset"):
		return "connection_reset"
	case isErrno(err, "too many open files"):
		return "too_many_open_files"
	case isErrno(err, "cannot assign requested address"):
		return "no_free_ports"
	}
	return "other"
}

var errBadReply = errors.New("bad reply")

func isErrno(err error, text string) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && strings.Contains(se.Err.Error(), text)
}

// endpoint is where the tool sends one kind of request: the read side
// (public) or the publish side (often a protected route).
type endpoint struct {
	// base is the URL the API paths are appended to, without a trailing
	// slash.
	base   string
	client *http.Client
	// header and basic auth are added to every request, for routes that
	// Caddy protects.
	header       http.Header
	user, passwd string
	hasAuth      bool
}

// targetConfig is where a run sends its requests, in both modes; the
// common flags fill it.
type targetConfig struct {
	// Target is the base URL of the comet API that readers use.
	Target string
	// PublishTarget is the base URL for registering channels, publishing and
	// /status.json; empty means Target.
	PublishTarget string
	// AllowRemote permits targets that are not loopback.
	AllowRemote bool
	// Insecure skips TLS certificate checks.
	Insecure bool
	// PublishAuth is "user:password" for basic auth on the publish side.
	PublishAuth string
	// PublishHeaders are "Name: value" headers for the publish side.
	PublishHeaders []string
}

// endpoints builds the read and publish endpoints, checking their targets.
func (c targetConfig) endpoints(ctx context.Context, readConns, dialSlots int) (read, pub *endpoint, err error) {
	base, err := checkBase(ctx, c.Target, c.AllowRemote)
	if err != nil {
		return nil, nil, err
	}
	pubBase := base
	if c.PublishTarget != "" {
		if pubBase, err = checkBase(ctx, c.PublishTarget, c.AllowRemote); err != nil {
			return nil, nil, err
		}
	}
	read = &endpoint{
		base: base,
		client: &http.Client{Transport: newTransport(transportOptions{
			conns: readConns, dialSlots: dialSlots, insecure: c.Insecure,
		})},
	}
	pub = &endpoint{
		base: pubBase,
		client: &http.Client{
			Transport: newTransport(transportOptions{conns: 64, insecure: c.Insecure}),
			Timeout:   30 * time.Second,
		},
		header: http.Header{},
	}
	if c.PublishAuth != "" {
		user, pass, ok := strings.Cut(c.PublishAuth, ":")
		if !ok {
			return nil, nil, fmt.Errorf("-publish-auth: want user:password")
		}
		pub.user, pub.passwd, pub.hasAuth = user, pass, true
	}
	for _, h := range c.PublishHeaders {
		name, value, err := parseHeader(h)
		if err != nil {
			return nil, nil, fmt.Errorf("-publish-header: %w", err)
		}
		pub.header.Add(name, value)
	}
	return read, pub, nil
}

// checkBase parses a base URL and, unless allowRemote, refuses hosts that
// are not loopback: a load tool pointed at someone else's server by mistake
// is a denial of service.
func checkBase(ctx context.Context, raw string, allowRemote bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("target %q: the scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("target %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("target %q: give the base URL the API paths go under, without query or fragment", raw)
	}
	if !allowRemote {
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			return "", fmt.Errorf("target %q: %w; pass -allow-remote to load a remote deployment", raw, err)
		}
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func checkLoopback(ctx context.Context, host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%s is not a loopback address", host)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolving %s to check that it is loopback: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not loopback", host, a.IP)
		}
	}
	return nil
}

// transportOptions tune an HTTP transport for a number of concurrent
// requests to one host.
type transportOptions struct {
	// conns is how many connections to keep per host: every held read needs
	// its own, and net/http keeps only 2 idle ones per host by default,
	// which would close and redial a connection after nearly every reply.
	conns int
	// dialSlots caps concurrent dials, so that thousands of readers starting
	// at once do not overflow the server's accept backlog (SYNs dropped
	// there are retried after a second, which looks like latency).
	dialSlots int
	insecure  bool
}

func newTransport(o transportOptions) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if o.dialSlots > 0 {
		slots := make(chan struct{}, o.dialSlots)
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-slots }()
			return d.DialContext(ctx, network, addr)
		}
	}
	t := &http.Transport{
		// Never through a proxy from the environment: the figures are about
		// the server.
		Proxy:               nil,
		DialContext:         dial,
		MaxConnsPerHost:     o.conns,
		MaxIdleConnsPerHost: o.conns,
		MaxIdleConns:        0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if o.insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return t
}

// newRequest builds a request for path with the endpoint's headers and
// credentials.
func (e *endpoint) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range e.header {
		req.Header[k] = v
	}
	if e.hasAuth {
		req.SetBasicAuth(e.user, e.passwd)
	}
	return req, nil
}

// do sends a request to the endpoint and decodes its reply; an HTTP status
// other than 200 or a negative return_code is an *apiError.
func (e *endpoint) do(ctx context.Context, method, path string, form url.Values) (reply, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := e.newRequest(ctx, method, path, body)
	if err != nil {
		return reply{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return reply{}, err
	}
	r, err := decodeReply(b)
	if err != nil {
		if resp.StatusCode != http.StatusOK {
			return r, &apiError{Status: resp.StatusCode, Message: abbreviate(b)}
		}
		return r, fmt.Errorf("%w: %w", errBadReply, err)
	}
	if resp.StatusCode != http.StatusOK || r.ReturnCode < 0 {
		return r, &apiError{Status: resp.StatusCode, Code: r.ReturnCode, Message: r.ErrorMessage}
	}
	return r, nil
}

// registerChannel registers a channel; one that exists already is fine, so
// runs can repeat against the same server. maxMessages 0 leaves the server's
// default.
func (e *endpoint) registerChannel(ctx context.Context, id string, maxMessages int) error {
	form := url.Values{"channel_id": {id}}
	if maxMessages > 0 {
		form.Set("max_messages", strconv.Itoa(maxMessages))
	}
	_, err := e.do(ctx, http.MethodPost, "/channels.json", form)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusOK && ae.Code == -2 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registering channel %q: %w", id, err)
	}
	return nil
}

// publish publishes content to a channel and returns the message id.
func (e *endpoint) publish(ctx context.Context, channel, content string) (int64, error) {
	r, err := e.do(ctx, http.MethodPost, "/channels/"+url.PathEscape(channel)+".json", url.Values{"content": {content}})
	if err != nil {
		return 0, fmt.Errorf("publishing to %q: %w", channel, err)
	}
	return r.MessageID, nil
}

// heldConnections asks /status.json how many reads the hub holds.
func (e *endpoint) heldConnections(ctx context.Context) (int64, error) {
	r, err := e.do(ctx, http.MethodGet, "/status.json", nil)
	if err != nil {
		return 0, fmt.Errorf("reading status: %w", err)
	}
	if r.Status == nil {
		return 0, fmt.Errorf("reading status: the reply has no status object")
	}
	return r.Status.HeldConnectionsCount, nil
}

// readPath is the path of a read of several channels: ids joined by '|',
// escaped as %7C like every other byte that is not allowed in a path.
func readPath(channels []string) string {
	esc := make([]string, len(channels))
	for i, c := range channels {
		esc[i] = url.PathEscape(c)
	}
	return "/channels/" + strings.Join(esc, "%7C") + ".json"
}

// parseHeader parses a "Name: value" flag.
func parseHeader(s string) (string, string, error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return "", "", fmt.Errorf("header %q: want \"Name: value\"", s)
	}
	return http.CanonicalHeaderKey(name), strings.TrimSpace(value), nil
}
