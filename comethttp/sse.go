package comethttp

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
)

// sseRetry is the reconnection delay a stream asks EventSource for, once,
// in its first write: long enough that a reload or an outage does not bring
// every client back in the same instant, short enough that a stream ended
// by a reload resumes within a couple of seconds.
const sseRetry = "retry: 2000\n"

// sseHeartbeat is the comment line an idle stream gets: EventSource ignores
// it, and it keeps the connection from looking idle to whatever is between.
const sseHeartbeat = ": heartbeat\n\n"

// streamCall is an event stream: the read it repeats from event to event,
// the stream that counts it as held, and the controller that flushes it.
// Its state is on the heap, as a held read's is (docs/design.md, "The stack
// budget of a held read"): a stream parks its goroutine in the hub between
// events for as long as it is open.
type streamCall struct {
	*readCall
	stream *hub.Stream
	// ctx is the context of the stream's reads: the request's, which also
	// ends when the handler stops (unhook undoes that, cancel ends it).
	// A stream then waits in the hub on one channel of its own for both,
	// rather than also on the handler's, which all its streams would
	// lock at every event (docs/design.md, "Event streams: writes").
	ctx    context.Context
	cancel context.CancelFunc
	unhook func() bool
	w      http.ResponseWriter
	rc     *http.ResponseController
	// event is what the stream's writer is to write (see
	// newEventWriters), and written hands back the outcome.
	event   []byte
	written chan error
	// writeFn is sc.writeNow, made once per stream rather than per event.
	writeFn func()
	// headerWritten is set once the stream's first write, which sends
	// the response's header, is done.
	headerWritten bool
}

// nextHold is how long the stream's next read may wait for messages:
// sse_heartbeat, or less when the stream's token expires sooner; 0 or less
// once it has expired, and the stream must end.
func (sc *streamCall) nextHold(heartbeat time.Duration) time.Duration {
	if sc.until.IsZero() {
		return heartbeat
	}
	return min(heartbeat, time.Until(sc.until))
}

// serveStream serves an event stream, GET /channels/IDS.sse (docs/api.md,
// "Server-Sent Events"): the API's error with its HTTP status when the read
// is refused, or else a 200 text/event-stream with the stream's first event
// at once, then one event per reply its reads get and a heartbeat whenever
// sse_heartbeat passes without one, until the client goes away, a channel
// of the stream is deleted, the store fails, its token expires (jwt) or
// the server begins to shut down.
//
// Its goroutine parks in the hub between events for as long as the stream
// is open, so it keeps to the stack budget of a held read as serveRead
// does (docs/design.md): ServeAPI calls it straight away, the hub is called
// from this frame, and opening the stream and writing events are sibling
// calls.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, call *apiCall, until time.Time) {
	sc := h.openStream(w, r, call.id, until)
	if sc == nil {
		return
	}
	sc.req.Hold = -1 // the first event does not wait: see docs/api.md
	if err := h.hub.ReadInto(sc.ctx, &sc.req, nil, &sc.reply); err != nil {
		h.refuseStream(w, r, sc, err)
		return
	}
	err := h.startStream(w, sc)
	for err == nil && sc.reply.Reason != hub.ReleasedStopped {
		// A stream whose reads keep finding messages never waits in the
		// hub, where the stop signal would end it: look for it here too.
		if h.stopped() {
			sc.reply.Reason = hub.ReleasedStopped
			break
		}
		sc.req.Since, sc.req.Hold = sc.reply.LastID, sc.nextHold(h.heartbeat)
		if sc.req.Hold <= 0 {
			break // its token has expired: a reconnect needs a new one
		}
		if err = h.hub.ReadInto(sc.ctx, &sc.req, nil, &sc.reply); err != nil {
			break
		}
		if sc.reply.Reason == hub.ReleasedCanceled && h.stopped() {
			sc.reply.Reason = hub.ReleasedStopped // for the log
		}
		switch sc.reply.Reason {
		case hub.ReleasedMessages:
			err = h.writeEvent(sc, "")
			continue
		case hub.ReleasedTimeout:
			err = h.write(sc, []byte(sseHeartbeat))
			continue
		}
		// Deleted, stopped, canceled or unavailable: the stream ends, and
		// a client that reconnects with Last-Event-ID gets what a read
		// would (docs/api.md, "Server-Sent Events").
		break
	}
	h.endStream(r, sc, err)
}

// stopped reports whether the server has begun to shut down.
func (h *Handler) stopped() bool {
	select {
	case <-h.stopCtx.Done():
		return true
	default:
		return false
	}
}

// endStream uncounts an ended stream and logs why it ended.
func (h *Handler) endStream(r *http.Request, sc *streamCall, err error) {
	sc.close()
	h.logger.Debug("event stream ended", zap.Stringer("uri", redactedURI(r)),
		zap.Stringer("reason", sc.reply.Reason), zap.Int64("last_id", sc.reply.LastID), zap.Error(err))
}

// openStream admits a stream, or answers the request with the API's error
// and returns nil. Nothing is written before the stream's first read
// succeeds (serveStream), so every refusal is an ordinary API reply with
// its HTTP status, which EventSource does not retry.
func (h *Handler) openStream(w http.ResponseWriter, r *http.Request, channels string, until time.Time) *streamCall {
	rd := h.newReadCall(w, r, channels, wire.JSON, until)
	if rd == nil {
		return nil
	}
	// A stream's replies are plain JSON whatever quote_json says: the
	// wrapper keeps a <script src> from running a .json reply, and an event
	// stream (text/event-stream, nosniff) is never run as script.
	rd.opts.QuoteJSON = false
	// What a reconnecting EventSource last received takes precedence over
	// the since of the URL it was first opened with. Like since, a value
	// that is not an integer counts as 0.
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		rd.req.Since, _ = strconv.ParseInt(id, 10, 64)
	}
	stream, err := h.hub.OpenStream(rd.req.Peer)
	if err != nil {
		h.replyError(w, r, rd.opts, err)
		return nil
	}
	rd.req.Stream = stream
	sc := newStreamCall(rd, stream, w)
	sc.ctx, sc.cancel = context.WithCancel(r.Context())
	sc.unhook = context.AfterFunc(h.stopCtx, sc.cancel)
	return sc
}

func newStreamCall(rd *readCall, stream *hub.Stream, w http.ResponseWriter) *streamCall {
	sc := &streamCall{readCall: rd, stream: stream, w: w, rc: http.NewResponseController(w),
		written: make(chan error, 1)}
	sc.writeFn = sc.writeNow
	return sc
}

// close uncounts the stream and lets its context go.
func (sc *streamCall) close() {
	sc.stream.Close()
	sc.unhook()
	sc.cancel()
}

// refuseStream answers a stream whose first read failed with the API's
// error, and uncounts it.
func (h *Handler) refuseStream(w http.ResponseWriter, r *http.Request, sc *streamCall, err error) {
	sc.close()
	h.replyError(w, r, sc.opts, err)
}

// startStream sends the stream's headers and its first event, after the
// retry delay.
func (h *Handler) startStream(w http.ResponseWriter, sc *streamCall) error {
	header := w.Header()
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-store")
	header.Set("X-Content-Type-Options", "nosniff")
	// nginx (and proxies that follow it) buffer responses unless told not
	// to; a buffered stream delivers nothing until the buffer fills.
	header.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return h.writeEvent(sc, sseRetry)
}

// writeEvent writes the stream's reply as an event, after prefix, and
// flushes it: its id is the reply's last_id and its data the reply's .json
// body, encoded as a long poll's (readBody), on one line since JSON escapes
// every line break. The streams that one publish released with the same
// reply share one encoding of the event (hub.Reply.Memo). A reply that a
// publish released is recorded as delivered once written.
func (h *Handler) writeEvent(sc *streamCall, prefix string) error {
	withMessages := sc.reply.Reason == hub.ReleasedMessages
	h.state.replies.Add(1)
	if withMessages && prefix == "" && sc.reply.Memo != nil {
		err := h.write(sc, sc.reply.Memo.Get(hub.MemoKey{Kind: memoEvent}, sc.encodeEvent))
		if err == nil {
			h.hub.Stats().ObserveDelivery(sc.reply.NotifiedAt)
		}
		return err
	}
	out := getReplyBuffer()
	*out = appendEvent((*out)[:0], prefix, &sc.reply, withMessages)
	err := h.write(sc, *out)
	putReplyBuffer(out)
	if err == nil && withMessages {
		h.hub.Stats().ObserveDelivery(sc.reply.NotifiedAt)
	}
	return err
}

// encodeEvent returns a new encoding of the stream's event, to be shared
// (see writeEvent).
func (sc *streamCall) encodeEvent() []byte {
	return appendEvent(nil, "", &sc.reply, true)
}

// appendEvent appends the event of reply, after prefix, to dst.
func appendEvent(dst []byte, prefix string, reply *hub.Reply, withMessages bool) []byte {
	body := getReplyBuffer()
	*body = readBody(reply, withMessages, *body)
	dst = append(dst, prefix...)
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, reply.LastID, 10)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, *body...)
	dst = append(dst, "\n\n"...)
	putReplyBuffer(body)
	return dst
}

// inlineEventSize is the largest event a stream writes from its own
// goroutine, once its header is out: up to net/http's buffer before
// chunking (2 KiB), an event is copied into the response's buffer and only
// its flush goes down to the connection, which stays within the stack
// budget of a held read; a larger event is written through, deeper
// (docs/design.md, "Event streams: writes").
const inlineEventSize = 2 << 10

// write writes p to the stream and flushes it through whatever wraps the
// response (encode, HTTP/2), so that it reaches the client now. The
// stream's first write, which sends the response's header, and events over
// inlineEventSize are written by a writer of the hub's (see
// newEventWriters), which keeps the depth of those writes off the stream's
// goroutine; the response is never used by two goroutines at once, as the
// stream's waits here while a writer uses it. Other events are written
// here: a hand-off costs two wake-ups per event.
func (h *Handler) write(sc *streamCall, p []byte) error {
	if sc.headerWritten && len(p) <= inlineEventSize {
		return sc.writeAndFlush(p)
	}
	sc.headerWritten = true
	sc.event = p
	// The writers are unbounded: Go does not wait, and cannot fail.
	_ = h.state.writers.Go(context.Background(), sc.writeFn)
	err := <-sc.written
	sc.event = nil
	return err
}

// writeNow writes the stream's event, on a writer's goroutine.
func (sc *streamCall) writeNow() {
	sc.written <- sc.writeAndFlush(sc.event)
}

func (sc *streamCall) writeAndFlush(p []byte) error {
	if _, err := sc.w.Write(p); err != nil {
		return err
	}
	return sc.rc.Flush()
}
