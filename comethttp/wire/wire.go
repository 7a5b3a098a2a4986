// Package wire encodes the comet API's replies: JSON, JSON-P with a checked
// callback name, the original server's "quoted" JSON, and its cache headers.
package wire

import (
	"bytes"
	"cmp"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Format is a reply's encoding, chosen by the resource's suffix.
type Format uint8

const (
	// JSON replies are application/json (".json").
	JSON Format = iota
	// JSONP replies call a JavaScript function (".jsonp").
	JSONP
)

// SplitFormat splits a resource name such as "channels.json" into its base
// and format. ok is false when the name has no ".json" or ".jsonp" suffix.
func SplitFormat(name string) (base string, format Format, ok bool) {
	switch {
	case strings.HasSuffix(name, ".json"):
		return name[:len(name)-len(".json")], JSON, true
	case strings.HasSuffix(name, ".jsonp"):
		return name[:len(name)-len(".jsonp")], JSONP, true
	}
	return name, JSON, false
}

// DefaultCallback is the JSON-P callback when the request names none.
const DefaultCallback = "_JSONP_comet_cb"

// CallbackPrefix starts every accepted callback name, so that a reply can
// only call functions meant for it.
const CallbackPrefix = "_JSONP_"

// MaxCallbackLength is the longest accepted callback name, in bytes.
const MaxCallbackLength = 128

// InvalidCallbackBody is the whole body of a JSON-P reply whose callback name
// was refused: a comment, which runs as nothing.
const InvalidCallbackBody = "/* invalid JSONP callback name */"

// ValidCallback reports whether name may be used as a JSON-P callback: it
// starts with CallbackPrefix, matches ^[A-Za-z_][A-Za-z0-9_.]*$ and is at
// most MaxCallbackLength bytes.
func ValidCallback(name string) bool {
	if len(name) > MaxCallbackLength || !strings.HasPrefix(name, CallbackPrefix) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case (c >= '0' && c <= '9') || c == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Options say how to wrap a reply.
type Options struct {
	// Format is JSON or JSONP.
	Format Format
	// Callback is the requested JSON-P callback; empty means
	// DefaultCallback.
	Callback string
	// QuoteJSON wraps JSON replies as /*-secure- {...} */, as the original
	// server's --quote-json did.
	QuoteJSON bool
}

// CallbackRefused reports whether o is a JSON-P reply whose callback name
// ValidCallback refuses: its body can only be InvalidCallbackBody.
func (o Options) CallbackRefused() bool {
	return o.Format == JSONP && !ValidCallback(cmp.Or(o.Callback, DefaultCallback))
}

// Cache-Control values: replies that carry messages may be cached for a
// second, as the original server allowed; anything else must not be.
const (
	CacheMessages = "private, must-revalidate, proxy-revalidate, max-age=1, s-max-age=1, stale-while-revalidate=1, stale-if-error=86400"
	CacheNone     = "no-store"
)

// Write sends body, a JSON object, as the reply: wrapped as opts say, with
// its content type and cache headers. withMessages marks replies that carry
// messages.
func Write(w http.ResponseWriter, status int, opts Options, body []byte, withMessages bool) error {
	out := Prepare(w.Header(), opts, body, withMessages)
	w.WriteHeader(status)
	_, err := w.Write(out)
	return err
}

// Prepare is Write without the writing: it sets the reply's headers in h
// and returns the body to write. It is for callers that must make the
// response writer's calls from as shallow a stack as they can: the comet
// handler writes the replies of held reads from under Caddy's and net/http's
// frames, where a stack that grows past 8 KiB at the write stays doubled
// for the next read the connection holds.
func Prepare(h http.Header, opts Options, body []byte, withMessages bool) []byte {
	if opts.Format == JSON && !opts.QuoteJSON {
		body = escapeCommentEnds(body)
		SetHeaders(h, opts, withMessages, len(body))
		return body
	}
	return prepareTo(make([]byte, 0, len(body)+MaxCallbackLength+16), h, opts, body, withMessages)
}

// PrepareTo is Prepare that writes the body to send into dst, from its
// start, and returns it, so that the caller can reuse the buffer once the
// reply is written: a read reply can be as large as max_reply_size.
func PrepareTo(dst []byte, h http.Header, opts Options, body []byte, withMessages bool) []byte {
	return prepareTo(dst[:0], h, opts, body, withMessages)
}

func prepareTo(dst []byte, h http.Header, opts Options, body []byte, withMessages bool) []byte {
	dst = AppendBody(dst, opts, body)
	SetHeaders(h, opts, withMessages, len(dst))
	return dst
}

// AppendBody appends to dst the body to send for body, a JSON object,
// wrapped as opts say, and returns it; SetHeaders sets its headers. Prepare
// does both; a caller that sends one body to many readers makes the body
// once, and sets each response's headers.
func AppendBody(dst []byte, opts Options, body []byte) []byte {
	body = escapeCommentEnds(body)
	switch {
	case opts.CallbackRefused():
		dst = append(dst, InvalidCallbackBody...)
	case opts.Format == JSONP:
		dst = append(append(append(append(dst, cmp.Or(opts.Callback, DefaultCallback)...), '('), body...), ");"...)
	case opts.QuoteJSON:
		dst = append(append(append(dst, "/*-secure- "...), body...), " */"...)
	default:
		dst = append(dst, body...)
	}
	return dst
}

// SetHeaders sets the content type, cache headers and length of a reply
// whose body to send (Prepare's, or AppendBody's) is length bytes long.
//
// It is on the way of every delivery, so it allocates little: the values
// of the reply's headers share one backing array, each header its own
// slice of it with no room to grow (a handler after this one that changes a
// value in place, as Caddy's header directive does, changes this reply's
// alone, and one that adds a value gets a new array), and the Expires date
// is formatted once a second, not once a reply.
func SetHeaders(h http.Header, opts Options, withMessages bool, length int) {
	vals := make([]string, 5)
	set := func(i int, key, value string) {
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	if withMessages {
		set(0, "Cache-Control", CacheMessages)
		set(1, "Expires", expiresInASecond(time.Now()))
	} else {
		set(0, "Cache-Control", CacheNone)
	}
	// A browser must not run a .json reply as script: with quote_json it
	// parses as a comment, and a sniffing browser would run what follows.
	set(2, "X-Content-Type-Options", "nosniff")
	if opts.Format == JSONP {
		set(3, "Content-Type", "application/javascript; charset=utf-8")
	} else {
		set(3, "Content-Type", "application/json")
	}
	set(4, "Content-Length", strconv.Itoa(length))
}

// expires is an Expires value, one second after the second it was made in.
type expires struct {
	second int64
	value  string
}

var latestExpires atomic.Pointer[expires]

// expiresInASecond returns the HTTP date of now plus one second, formatted
// once for every reply in the same second.
func expiresInASecond(now time.Time) string {
	second := now.Unix()
	if e := latestExpires.Load(); e != nil && e.second == second {
		return e.value
	}
	e := &expires{second: second, value: string(appendHTTPDate(make([]byte, 0, len(http.TimeFormat)), time.Unix(second+1, 0)))}
	latestExpires.Store(e)
	return e.value
}

// escapeCommentEnds returns body, a JSON value, with every "*/" written
// "*\/", so that it cannot end the /*-secure- ... */ comment of quoted
// JSON. In JSON a '*' occurs only inside strings, where "\/" is '/', so the
// value is unchanged. jsonstring.Append writes strings so already; this covers
// the rest: values encoded by encoding/json, and messages that a store kept
// from versions that did not escape.
func escapeCommentEnds(body []byte) []byte {
	if !bytes.Contains(body, commentEnd) {
		return body
	}
	return bytes.ReplaceAll(body, commentEnd, []byte(`*\/`))
}

var commentEnd = []byte("*/")

// appendHTTPDate appends t in http.TimeFormat, as t.UTC().Format would for
// years 0 to 9999, in a few small frames where time's general formatter
// takes about a kilobyte of stack: Prepare runs under a held read's
// goroutine (see Prepare).
func appendHTTPDate(b []byte, t time.Time) []byte {
	const days, months = "SunMonTueWedThuFriSat", "JanFebMarAprMayJunJulAugSepOctNovDec"
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	wd := int(t.Weekday()) * 3
	b = append(b, days[wd:wd+3]...)
	b = append(b, ", "...)
	b = appendDigits(b, day, 2)
	b = append(b, ' ')
	m := (int(month) - 1) * 3
	b = append(b, months[m:m+3]...)
	b = append(b, ' ')
	b = appendDigits(b, year, 4)
	b = append(b, ' ')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	return append(b, " GMT"...)
}

// appendDigits appends v, 0 <= v < 10^n, as n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	for d := n - 1; d >= 0; d-- {
		p := 1
		for range d {
			p *= 10
		}
		b = append(b, byte('0'+v/p%10))
	}
	return b
}
