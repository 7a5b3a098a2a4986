// Package jsonp encodes the comet API's replies: JSON, JSON-P with a checked
// callback name, the original server's "quoted" JSON, and its cache headers.
package jsonp

import (
	"net/http"
	"strconv"
	"strings"
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
	h := w.Header()
	if withMessages {
		h.Set("Cache-Control", CacheMessages)
		h.Set("Expires", time.Now().Add(time.Second).UTC().Format(http.TimeFormat))
	} else {
		h.Set("Cache-Control", CacheNone)
	}
	var out []byte
	switch opts.Format {
	case JSONP:
		h.Set("Content-Type", "application/javascript; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		cb := opts.Callback
		if cb == "" {
			cb = DefaultCallback
		}
		if !ValidCallback(cb) {
			out = []byte(InvalidCallbackBody)
			break
		}
		out = make([]byte, 0, len(cb)+len(body)+3)
		out = append(append(append(append(out, cb...), '('), body...), ");"...)
	default:
		h.Set("Content-Type", "application/json")
		if opts.QuoteJSON {
			out = make([]byte, 0, len(body)+14)
			out = append(append(append(out, "/*-secure- "...), body...), " */"...)
		} else {
			out = body
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, err := w.Write(out)
	return err
}
