package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// fanoutConfig is one fan-out run; flags fill it in main.go, tests directly.
type fanoutConfig struct {
	targetConfig

	// Prefix names the channels: <Prefix>-0 ... <Prefix>-<Channels-1>.
	Prefix   string
	Channels int
	Readers  int
	// PerRead is how many channels each reader reads in one request.
	PerRead int
	// Messages is how many messages to publish after the warm-up.
	Messages int
	// Rate is messages per second.
	Rate float64
	// Size is the length of each message's content in bytes (at least the
	// tool's header, about 50 bytes).
	Size int
	// Publishers is how many publish requests may be in flight at once.
	Publishers int
	// MaxMessages is sent as max_messages when registering; 0 leaves the
	// server's default.
	MaxMessages int

	// Warmup is how long to publish before the measured messages; warm-up
	// messages are checked for loss and duplicates but not timed.
	Warmup time.Duration
	// Duration caps the publishing phase (warm-up included).
	Duration time.Duration
	// Drain is how long to wait after the last publish for deliveries.
	Drain time.Duration
	// SetupTimeout caps connecting the readers and seeing them held.
	SetupTimeout time.Duration
	// Settle is how long to wait after every reader's request went out,
	// when /status.json is not used to see them held.
	Settle time.Duration
	// UseStatus waits until /status.json's held_connections_count shows
	// every reader held, instead of Settle.
	UseStatus bool
	// ReadTimeout caps one read; it must be longer than the server's
	// http_timeout.
	ReadTimeout time.Duration

	// PID is the server's process id for memory figures; 0 skips them.
	PID int
	// OtherPIDs are more processes of the same server (nginx's workers),
	// whose memory figures add to PID's.
	OtherPIDs []int
	// Expvar is the URL of the server's Go expvar memstats (Caddy's admin
	// /debug/vars), for heap and stack figures; empty skips them.
	Expvar string
	// Connections caps the readers' connections; 0 means one per reader.
	Connections int
	// DialConcurrency caps connections being opened at once.
	DialConcurrency int
	// FileLimit is the open-file limit to check Readers against; 0 skips
	// the check.
	FileLimit uint64

	// Client is the readers' HTTP client: "lean" (the default: one
	// connection and goroutine per reader, see leanPoller) or "net/http".
	Client string
	// API is the server's protocol: "comet" (the default), "nchan"
	// (nginx's Nchan module; see api_nchan.go for the locations it needs)
	// or "centrifugo" (its uni_sse transport and server API; see
	// api_centrifugo.go).
	API string
	// TokenSecret is Centrifugo's client.token.hmac_secret_key, which
	// signs the readers' connection tokens (-api centrifugo only; no
	// default).
	TokenSecret string
	// APIKey is Centrifugo's http_api.key, sent as X-API-Key with every
	// publish (-api centrifugo only; no default).
	APIKey string
	// Transport is how readers read: "longpoll" (the default) or "sse"
	// (Server-Sent Events).
	Transport string

	// ProgressEvery is the interval of the progress line; 0 turns it off.
	ProgressEvery time.Duration
}

// The APIs and transports a run can speak.
const (
	apiComet          = "comet"
	apiNchan          = "nchan"
	apiCentrifugo     = "centrifugo"
	transportLongPoll = "longpoll"
	transportSSE      = "sse"
)

// Limits of a fan-out run.
const (
	// maxTallyBytes bounds the delivery ledger (one bit per reader and
	// message).
	maxTallyBytes = 1 << 30
	// spareFiles is what the tool needs open besides one connection per
	// reader: publishers, status, stdio, the runtime's own.
	spareFiles = 64
)

func (c *fanoutConfig) warmupMessages() int {
	return int(math.Ceil(c.Warmup.Seconds() * c.Rate))
}

// validate checks the config and says which value is wrong and why.
func (c *fanoutConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Channels < 1 {
		bad("-channels %d: need at least 1", c.Channels)
	}
	if c.Readers < 1 {
		bad("-readers %d: need at least 1", c.Readers)
	}
	if c.PerRead < 1 || (c.Channels >= 1 && c.PerRead > c.Channels) {
		bad("-channels-per-read %d: must be between 1 and -channels (%d)", c.PerRead, c.Channels)
	}
	if c.Messages < 1 {
		bad("-messages %d: need at least 1", c.Messages)
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		bad("-rate %v: must be a positive number of messages per second", c.Rate)
	}
	if c.Size < 0 {
		bad("-size %d: must not be negative", c.Size)
	}
	if c.Publishers < 1 {
		bad("-publishers %d: need at least 1", c.Publishers)
	}
	if c.MaxMessages < 0 {
		bad("-max-messages %d: must not be negative", c.MaxMessages)
	}
	if c.Warmup < 0 {
		bad("-warmup %v: must not be negative", c.Warmup)
	}
	if c.Duration <= 0 {
		bad("-duration %v: must be positive", c.Duration)
	}
	if c.Drain < 0 {
		bad("-drain %v: must not be negative", c.Drain)
	}
	if c.SetupTimeout <= 0 {
		bad("-setup-timeout %v: must be positive", c.SetupTimeout)
	}
	if c.Settle < 0 {
		bad("-settle %v: must not be negative", c.Settle)
	}
	if c.ReadTimeout <= 0 {
		bad("-read-timeout %v: must be positive", c.ReadTimeout)
	}
	switch c.Client {
	case "", "lean":
		if c.Connections != 0 {
			bad("-connections %d: applies to -client net/http only (a lean reader always has one connection)", c.Connections)
		}
	case "net/http":
		if c.Connections < 0 {
			bad("-connections %d: must not be negative", c.Connections)
		}
	default:
		bad("-client %q: want lean or net/http", c.Client)
	}
	switch c.API {
	case "", apiComet:
	case apiNchan:
		if c.PerRead != 1 {
			bad("-channels-per-read %d: -api nchan reads one channel per request", c.PerRead)
		}
		if c.MaxMessages != 0 {
			bad("-max-messages %d: -api nchan has no registration; set nchan_message_buffer_length in nginx.conf", c.MaxMessages)
		}
		if c.Expvar != "" {
			bad("-expvar: nginx has no Go memstats; -api nchan reports RSS with -pid")
		}
	case apiCentrifugo:
		if c.Transport != transportSSE {
			bad("-transport %q: -api centrifugo reads its unidirectional Server-Sent Events (uni_sse): give -transport sse", c.Transport)
		}
		if c.TokenSecret == "" {
			bad("-centrifugo-token-secret: -api centrifugo needs client.token.hmac_secret_key to sign the readers' tokens")
		}
		if c.APIKey == "" {
			bad("-centrifugo-api-key: -api centrifugo needs http_api.key to publish")
		}
		if c.MaxMessages != 0 {
			bad("-max-messages %d: -api centrifugo has no registration; set history_size in Centrifugo's config", c.MaxMessages)
		}
		if c.Expvar != "" {
			bad("-expvar: Centrifugo serves no expvar memstats; -api centrifugo reports RSS with -pid")
		}
	default:
		bad("-api %q: want comet, nchan or centrifugo", c.API)
	}
	if c.API != apiCentrifugo && (c.TokenSecret != "" || c.APIKey != "") {
		bad("-centrifugo-token-secret and -centrifugo-api-key apply to -api centrifugo only")
	}
	switch c.Transport {
	case "", transportLongPoll, transportSSE:
	default:
		bad("-transport %q: want longpoll or sse", c.Transport)
	}
	if c.DialConcurrency < 0 {
		bad("-dial-concurrency %d: must not be negative", c.DialConcurrency)
	}
	if c.PID < 0 {
		bad("-pid %d: must not be negative", c.PID)
	}
	for _, pid := range c.OtherPIDs {
		if pid <= 0 || c.PID == 0 {
			bad("-pid: process ids must be positive")
			break
		}
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "|") {
		bad("-prefix %q: must be non-empty and without '|'", c.Prefix)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if n := tallyBytes(c.Readers, c.warmupMessages()+c.Messages); n > maxTallyBytes {
		bad("-readers %d x %d messages (warm-up included) need %d MiB of delivery records; the limit is %d MiB",
			c.Readers, c.warmupMessages()+c.Messages, n>>20, maxTallyBytes>>20)
	}
	if c.FileLimit > 0 && uint64(c.Readers)+spareFiles > c.FileLimit {
		bad("-readers %d: each held read needs an open connection, and the open-file limit is %d (at most %d readers)",
			c.Readers, c.FileLimit, c.FileLimit-min(c.FileLimit, spareFiles))
	}
	return errors.Join(errs...)
}

// pollers returns what makes each reader's connection.
func (c *fanoutConfig) pollers(read *endpoint) (func() poller, error) {
	switch c.Client {
	case "", "lean":
		d, err := newLeanDialer(read, c.ReadTimeout, c.DialConcurrency, c.Insecure)
		if err != nil {
			return nil, err
		}
		return func() poller { return newLeanPoller(d) }, nil
	case "net/http":
		return func() poller { return httpPoller{ep: read} }, nil
	}
	return nil, fmt.Errorf("-client %q: want lean or net/http", c.Client)
}
