package comet

import (
	"cmp"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// writeMargin is how much longer than http_timeout a server must let a
// held read's reply be written: the reply is written once http_timeout has
// passed, so a write deadline a little later still cuts it off.
const writeMargin = 5 * time.Second

// caddyDefaultWriteIdleTimeout is the write_idle timeout of a Caddy server
// that sets none.
const caddyDefaultWriteIdleTimeout = caddy.Duration(time.Minute)

// warnShortWriteTimeouts warns when srv would cut off the replies of held
// reads, which clients see as an empty TCP reply and the server does not
// report: a write timeout shorter than http_timeout, or a write_idle
// timeout with a minimum rate (its deadline then counts from the start of
// the request, not from the last write). It also warns of any write
// timeout on a route that serves event streams, which it ends.
func (h *Handler) warnShortWriteTimeouts(srv *caddyhttp.Server) {
	held := h.pooled.Config().HTTPTimeout
	warn := func(field string, timeout caddy.Duration) {
		if timeout > 0 && time.Duration(timeout) < held+writeMargin {
			h.logger.Warn("the server's timeout ends held reads before http_timeout, and their replies are lost; "+
				"make it longer than http_timeout or http_timeout shorter (see docs/deployment.md: Timeouts and proxies)",
				zap.String("server", srv.Name()),
				// Durations as text (10s): Caddy's encoder writes zap
				// durations as bare seconds, which read as no unit.
				zap.Stringer(field, time.Duration(timeout)),
				zap.Stringer("http_timeout", held))
		}
	}
	warn("write_timeout", srv.WriteTimeout)
	if srv.WriteTimeout > 0 && slices.Contains(h.Allow, OpSubscribe) {
		// An event stream never ends on its own, so any write timeout
		// ends it: its client reconnects with Last-Event-ID and loses
		// nothing, but every stream reconnects once per timeout.
		h.logger.Warn("the server's write timeout ends every event stream (.sse) when it passes, and its client must reconnect; "+
			"remove it, or serve streams from a server without one (see docs/api.md: Server-Sent Events)",
			zap.String("server", srv.Name()),
			zap.Stringer("write_timeout", time.Duration(srv.WriteTimeout)))
	}
	if srv.WriteMinRate > 0 {
		// Caddy sets its default after provisioning the handlers.
		warn("write_idle_timeout", cmp.Or(srv.WriteIdleTimeout, caddyDefaultWriteIdleTimeout))
	}
}
