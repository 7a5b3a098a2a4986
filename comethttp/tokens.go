package comethttp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
)

// authorize checks the token of a request the handler is about to serve,
// when it has a verifier that requires one for the request's operation.
// It answers a refused request itself (403, in the reply format of the
// path) and returns false; it returns true for everything else, including
// requests that serveAPI refuses for other reasons (unknown format, method
// or operation not allowed), so that those keep their own errors.
//
// until is when the token it took stops being taken (exp plus leeway), or
// zero when no token was asked for: a read held, or a stream open, must
// not outlive what allowed it.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, call *apiCall) (until time.Time, ok bool) {
	if h.verifier == nil || !call.formatOK || call.resource == resScript {
		return time.Time{}, true
	}
	op := call.op
	if !h.allowed[op] || !h.required[op] {
		return time.Time{}, true // no operation, the health probe, or no token needed
	}
	g, err := h.verifier.Check(r, op, call.id)
	if err == nil {
		return g.Until, true
	}
	var apiErr *hub.Error
	if !errors.As(err, &apiErr) {
		return time.Time{}, false // the client left while its token waited to be verified
	}
	// Which check failed, never the token (nor the query that holds it).
	h.logger.Debug("token refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("operation", op), zap.String("reason", apiErr.Error()))
	opts := wire.Options{Format: call.format, Callback: r.URL.Query().Get("cb"), QuoteJSON: h.quoteJSON}
	h.replyErrorStatus(w, r, opts, http.StatusForbidden, apiErr)
	return time.Time{}, false
}

// redactedURI is the request's URI for a log line, with the value of any
// token parameter replaced: a token in a log is a credential anyone who
// reads the log can use until it expires. It is a fmt.Stringer for
// zap.Stringer, so that the URI is redacted only when a line is logged.
func redactedURI(r *http.Request) fmt.Stringer { return logURI{r} }

type logURI struct{ r *http.Request }

func (u logURI) String() string {
	uri := u.r.RequestURI
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	pairs := strings.Split(query, "&")
	for i, pair := range pairs {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err != nil || n == "token" {
			pairs[i] = name + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(pairs, "&")
}
