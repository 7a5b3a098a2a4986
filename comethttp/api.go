package comethttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/client"
	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/internal/jsonstring"
)

// formOverhead is how much larger than max_message_size a publish body may
// be: URL-encoding can triple the content, plus the other fields.
const formOverhead = 4096

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, call *apiCall) {
	opts := wire.Options{Format: call.format, Callback: r.URL.Query().Get("cb"), QuoteJSON: h.quoteJSON}
	if !call.formatOK {
		h.replyError(w, r, opts, &hub.Error{Code: hub.CodeBadRequest, Message: "Unknown output format"})
		return
	}
	if h.refuseCallback(w, r, opts) {
		return
	}
	op := call.op
	if op == "" {
		w.Header().Set("Allow", call.allow)
		h.replyErrorStatus(w, r, opts, http.StatusMethodNotAllowed,
			&hub.Error{Code: hub.CodeBadRequest, Message: "Method not allowed", Detail: "use " + call.allow})
		return
	}
	if op != opHealth && !h.allowed[op] {
		h.replyErrorStatus(w, r, opts, http.StatusForbidden,
			&hub.Error{Code: hub.CodeBadRequest, Message: "Operation not allowed on this route", Detail: op})
		return
	}
	if h.refuseCrossSite(w, r, opts, op) {
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodySize(h.hub.Config().MaxMessageSize))
	}
	if err := r.ParseForm(); err != nil {
		h.replyFormError(w, r, opts, err)
		return
	}

	switch {
	case call.resource == resScript:
		h.serveScript(w, r, call.id)
	case call.resource == resChannels:
		h.registerChannel(w, r, opts)
	case call.resource == resClients:
		h.registerClient(w, r, opts)
	case call.resource == resStatus:
		h.status(w, r, opts)
	case call.resource == resHealth:
		h.health(w, r, opts)
	// A channel's GET, a read, never gets here allowed and in a known
	// format, nor an event stream's allowed GET: ServeAPI answers those
	// (see serveRead, serveStream).
	case r.Method == http.MethodPost:
		h.publish(w, r, opts, call.id)
	case r.Method == http.MethodDelete:
		h.deleteChannel(w, r, opts, call.id)
	}
}

// replyFormError answers a request whose form could not be parsed.
func (h *Handler) replyFormError(w http.ResponseWriter, r *http.Request, opts wire.Options, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.replyErrorStatus(w, r, opts, http.StatusRequestEntityTooLarge,
			hub.ErrMessageTooLarge.With(fmt.Sprintf("request body over %d bytes", tooLarge.Limit)))
		return
	}
	h.replyError(w, r, opts, &hub.Error{Code: hub.CodeBadRequest, Message: "Invalid form body", Detail: err.Error()})
}

// maxBodySize is the largest publish body for a max_message_size, without
// overflowing into a negative limit that would refuse every body.
func maxBodySize(maxMessageSize int) int64 {
	if int64(maxMessageSize) > (math.MaxInt64-formOverhead)/3 {
		return math.MaxInt64
	}
	return 3*int64(maxMessageSize) + formOverhead
}

func (h *Handler) registerChannel(w http.ResponseWriter, r *http.Request, opts wire.Options) {
	id := r.Form.Get("channel_id")
	useSessions, ok := parseBool(r.Form.Get("use_sessions"))
	if !ok {
		h.replyError(w, r, opts, hub.ErrInvalidUseSessions)
		return
	}
	maxMessages := 0
	if v := r.Form.Get("max_messages"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.replyError(w, r, opts, hub.ErrInvalidMaxMessages)
			return
		}
		maxMessages = n
	}
	if err := h.hub.RegisterChannel(r.Context(), id, useSessions, maxMessages); err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	h.reply(w, r, opts, wire.NewObject(nil).String("channel_id", id).Int("return_code", hub.CodeOK).String("error_message", "").Bytes())
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, opts wire.Options, channel string) {
	key, err := idempotencyKey(r)
	if err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	p, err := h.hub.PublishOnce(r.Context(), channel, r.Form.Get("content"), key)
	if err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	reply := wire.NewObject(nil).Int("message_id", p.ID)
	if p.Replayed {
		// A retry of a publish that was stored: tell the publisher, who
		// may want to know, without changing the reply it relies on.
		w.Header().Set("Idempotent-Replayed", "true")
		reply = reply.Bool("replayed", true)
		h.logger.Debug("publish replayed", zap.String("channel", channel), zap.Int64("message_id", p.ID))
	}
	h.reply(w, r, opts, reply.Int("return_code", hub.CodeOK).String("error_message", "").Bytes())
}

// idempotencyKey returns a publish's idempotency key, from the
// Idempotency-Key header or the idempotency_key field, or "" when it has
// none. A key given both ways must be the same; an empty one is invalid.
func idempotencyKey(r *http.Request) (string, error) {
	header, inHeader := r.Header[http.CanonicalHeaderKey("Idempotency-Key")]
	field, inForm := r.Form["idempotency_key"]
	switch {
	case len(header) > 1 || len(field) > 1:
		return "", hub.ErrInvalidIdempotencyKey.With("given more than once")
	case inHeader && inForm && header[0] != field[0]:
		return "", hub.ErrInvalidIdempotencyKey.With("the Idempotency-Key header and the idempotency_key field differ")
	case inHeader:
		return header[0], hub.ValidateIdempotencyKey(header[0])
	case inForm:
		return field[0], hub.ValidateIdempotencyKey(field[0])
	}
	return "", nil
}

func (h *Handler) registerClient(w http.ResponseWriter, r *http.Request, opts wire.Options) {
	id := r.Form.Get("client_id")
	if err := h.hub.RegisterClient(r.Context(), id); err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	h.reply(w, r, opts, wire.NewObject(nil).String("client_id", id).Int("return_code", hub.CodeOK).String("error_message", "").Bytes())
}

func (h *Handler) deleteChannel(w http.ResponseWriter, r *http.Request, opts wire.Options, id string) {
	removed, err := h.hub.DeleteChannel(r.Context(), id)
	if err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	code := hub.CodeOK
	if removed {
		code = hub.CodeRemoved
	}
	h.reply(w, r, opts, wire.NewObject(nil).String("channel_id", id).Bool("removed", removed).Int("return_code", int64(code)).String("error_message", "").Bytes())
}

// serveRead answers a read (GET on a channel list, allowed on this route,
// in a known format) and returns it with the body of its 200 reply encoded
// and the headers set, for ServeAPI to write (writeRead); nil when there is
// nothing left to write.
//
// A held read parks its goroutine in here and keeps to the stack budget of
// a held read (docs/design.md, "The stack budget of a held read"): so
// ServeAPI calls this straight away, not through serveAPI, writes the
// reply itself rather than from one frame deeper, and this frame stays
// small, with the read's state on the heap.
func (h *Handler) serveRead(w http.ResponseWriter, r *http.Request, call *apiCall, until time.Time) *readCall {
	rd := h.newReadCall(w, r, call.id, call.format, until)
	if rd == nil {
		return nil
	}
	if err := h.hub.ReadInto(r.Context(), &rd.req, h.stopCtx.Done(), &rd.reply); err != nil {
		h.replyError(w, r, rd.opts, err)
		return nil
	}
	if rd.reply.Reason == hub.ReleasedCanceled {
		return nil // the client has gone
	}
	h.prepareRead(w, rd)
	return rd
}

// Memo kinds of the encodings of a read's reply (hub.ReplyMemo).
const (
	memoJSON uint8 = iota
	memoQuotedJSON
	memoJSONP
	memoEvent
)

// prepareRead encodes a read's reply into rd.body and sets its headers.
// The readers that one publish released with the same reply share one
// encoding per format and callback (hub.Reply.Memo); a reply of its own
// is encoded in a buffer of replyBuffers, rd.pooled, which writeRead puts
// back.
func (h *Handler) prepareRead(w http.ResponseWriter, rd *readCall) {
	withMessages := rd.reply.Reason == hub.ReleasedMessages
	h.state.replies.Add(1)
	if withMessages && rd.reply.Memo != nil {
		rd.body = rd.reply.Memo.Get(hub.MemoKey{Kind: memoKind(rd.opts), Name: rd.opts.Callback}, rd.encode)
		wire.SetHeaders(w.Header(), rd.opts, true, len(rd.body))
		return
	}
	body := getReplyBuffer()
	*body = readBody(&rd.reply, withMessages, *body)
	if rd.opts.Format == wire.JSON && !rd.opts.QuoteJSON {
		*body = wire.Prepare(w.Header(), rd.opts, *body, withMessages) // the body itself
		rd.body, rd.pooled = *body, body
		return
	}
	out := getReplyBuffer()
	*out = wire.PrepareTo(*out, w.Header(), rd.opts, *body, withMessages)
	putReplyBuffer(body)
	rd.body, rd.pooled = *out, out
}

// encode returns a new encoding of the read's reply, which carries
// messages, to be shared (see prepareRead).
func (rd *readCall) encode() []byte {
	body := getReplyBuffer()
	*body = readBody(&rd.reply, true, *body)
	enc := wire.AppendBody(make([]byte, 0, len(*body)+wire.MaxCallbackLength+16), rd.opts, *body)
	putReplyBuffer(body)
	return enc
}

// memoKind is the memo kind of a reply encoded as opts say.
func memoKind(opts wire.Options) uint8 {
	switch {
	case opts.Format == wire.JSONP:
		return memoJSONP
	case opts.QuoteJSON:
		return memoQuotedJSON
	}
	return memoJSON
}

// writeRead writes the 200 reply of a read that prepareRead encoded, puts
// its buffer back and, once the reply is written, records the delivery of a
// read that a publish released (see hub.Reply.NotifiedAt). A reply that could
// not be written delivered nothing and is not recorded.
func (h *Handler) writeRead(w http.ResponseWriter, r *http.Request, rd *readCall) {
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(rd.body); err != nil {
		h.logWriteError(r, err)
	} else {
		h.hub.Stats().ObserveDelivery(rd.reply.NotifiedAt)
	}
	if rd.pooled != nil {
		putReplyBuffer(rd.pooled)
	}
	rd.body, rd.pooled = nil, nil
}

// replyBuffers hold read replies while they are encoded and written. A
// reply can be as large as max_reply_size, and readers paging through full
// channels, or thousands woken by one publish, would otherwise leave a
// reply's worth of garbage each: the heap would grow by what the garbage
// collector lets pile up between cycles, which on a hub retaining hundreds
// of megabytes is hundreds of megabytes more. A writer does not keep the
// slice it is given (io.Writer), so a buffer is free again once written.
var replyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledReply is the largest buffer kept for reuse; larger ones (a
// max_reply_size above it) are left to the garbage collector.
const maxPooledReply = 4 << 20

func getReplyBuffer() *[]byte { return replyBuffers.Get().(*[]byte) }

func putReplyBuffer(b *[]byte) {
	if cap(*b) <= maxPooledReply {
		*b = (*b)[:0]
		replyBuffers.Put(b)
	}
}

// readCall is a read: the hub's request and reply, and the reply's encoding.
type readCall struct {
	req   hub.ReadRequest
	reply hub.Reply
	opts  wire.Options
	// until is when the read's token stops being taken (exp plus leeway),
	// or zero when it needs none (see authorize).
	until time.Time
	// body is the reply to write, prepared by prepareRead: shared with
	// other readers (hub.Reply.Memo), or in pooled, a buffer of
	// replyBuffers that is the read's own.
	body   []byte
	pooled *[]byte
}

// newReadCall makes the readCall of a read from its query, or answers the
// request with an error and returns nil. A GET has no form body, so its
// form is its query, parsed here once for since, client_id and cb; unlike
// r.ParseForm, it does not keep the parsed form on the request, which a
// held read would carry for as long as it is held. until is as authorize
// returned it.
func (h *Handler) newReadCall(w http.ResponseWriter, r *http.Request, channels string, format wire.Format, until time.Time) *readCall {
	form, err := url.ParseQuery(r.URL.RawQuery)
	rd := &readCall{opts: wire.Options{Format: format, Callback: form.Get("cb"), QuoteJSON: h.quoteJSON}, until: until}
	if err != nil {
		h.replyFormError(w, r, rd.opts, err)
		return nil
	}
	if h.refuseCallback(w, r, rd.opts) {
		return nil
	}
	rd.req.Channels = channels
	if ids, ok := form["client_id"]; ok {
		rd.req.HasClientID = true
		rd.req.ClientID = ids[0]
	}
	// A since that is not an integer counts as 0, as in the original.
	rd.req.Since, _ = strconv.ParseInt(form.Get("since"), 10, 64)
	if h.hub.Config().MaxHeldPerPeer > 0 {
		rd.req.Peer = h.state.peerOf(h.clientIP(r))
	}
	if !rd.until.IsZero() {
		rd.req.Hold = holdUntil(rd.until, h.hub.Config().HTTPTimeout)
	}
	return rd
}

// holdUntil is how long a read whose token stops being taken at until may
// be held when it finds nothing: timeout (http_timeout), or less when the
// token expires sooner, so that no message reaches a reader after what
// allowed it has expired; below 0 (answered at once) once it has. Such a
// read is answered as one that timed out, and the client reads on with a
// new token.
func holdUntil(until time.Time, timeout time.Duration) time.Duration {
	switch left := time.Until(until); {
	case left <= 0:
		return -1
	case left < timeout:
		return left
	}
	return timeout
}

// readBody encodes a read's reply into buf, from its start.
func readBody(reply *hub.Reply, withMessages bool, buf []byte) []byte {
	size := 160 // the fields around the messages
	if withMessages {
		for _, c := range reply.Channels {
			size += len(c.ID) + 8
			for _, m := range c.Messages {
				size += len(m.JSON) + 1
			}
		}
	}
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	o := wire.NewObject(buf).Int("since", reply.Since)
	if withMessages {
		o.RawFunc("messages", func(dst []byte) []byte { return appendMessages(dst, reply.Channels) })
	} else {
		o.Raw("messages", emptyObject)
	}
	return o.Int("last_id", reply.LastID).
		Int("return_code", hub.CodeOK).
		String("error_message", "").
		Bytes()
}

var emptyObject = []byte("{}")

// appendMessages appends {"channel":[message, ...], ...}, splicing in each
// message's JSON as it was encoded at publish.
func appendMessages(dst []byte, chans []hub.ChannelMessages) []byte {
	dst = append(dst, '{')
	for i, c := range chans {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstring.Append(dst, c.ID)
		dst = append(dst, ':', '[')
		for j, m := range c.Messages {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, m.JSON...)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, opts wire.Options) {
	if !h.enableStatus {
		h.replyError(w, r, opts, &hub.Error{Code: hub.CodeBadRequest, Message: "Status disabled"})
		return
	}
	st, err := h.hub.Status(r.Context())
	if err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	inner, err := json.Marshal(struct {
		Channels []hub.ChannelStatus `json:"channels"`
		Clients  []string            `json:"clients"`
		Held     int                 `json:"held_connections_count"`
	}{st.Channels, st.Clients, h.hub.Held()})
	if err != nil {
		h.replyError(w, r, opts, fmt.Errorf("encoding status: %w", err))
		return
	}
	h.reply(w, r, opts, wire.NewObject(nil).
		Raw("status", inner).
		Int("channels_count", int64(st.Counts.Channels)).
		Int("clients_count", int64(st.Counts.Clients)).
		Int("messages_count", int64(st.Counts.Messages)).
		Int("return_code", hub.CodeOK).
		String("error_message", "").
		Bytes())
}

// health answers the health probe: 200 with {"status":"ok"} while the
// hub's store answers within hub.PingTimeout, and otherwise the API's error
// for it, 503 with -4 "Store unavailable". Nothing about the hub or its
// store is in the reply, so any route may serve it.
func (h *Handler) health(w http.ResponseWriter, r *http.Request, opts wire.Options) {
	if err := h.hub.Ping(r.Context()); err != nil {
		h.replyError(w, r, opts, err)
		return
	}
	h.reply(w, r, opts, wire.NewObject(nil).String("status", "ok").Int("return_code", hub.CodeOK).String("error_message", "").Bytes())
}

func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request, name string) {
	body, etag, _ := client.Script(name)
	w.Header().Set("Content-Type", client.ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// reply answers with a 200 reply that carries no messages (only reads
// carry messages, and prepareRead encodes those).
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, opts wire.Options, body []byte) {
	h.state.replies.Add(1)
	if err := wire.Write(w, http.StatusOK, opts, body, false); err != nil {
		h.logWriteError(r, err)
	}
}

// logWriteError logs a reply that could not be written (the client went
// away, most likely).
func (h *Handler) logWriteError(r *http.Request, err error) {
	h.logger.Debug("writing reply", zap.Stringer("uri", redactedURI(r)), zap.Error(err))
}

// replyError answers with an API error, with the HTTP status its code calls
// for.
func (h *Handler) replyError(w http.ResponseWriter, r *http.Request, opts wire.Options, err error) {
	apiErr := hub.AsError(err)
	status := http.StatusOK
	switch {
	case errors.Is(apiErr, hub.ErrMessageTooLarge):
		status = http.StatusRequestEntityTooLarge
	case apiErr.Code == hub.CodeUnavailable, apiErr.Code == hub.CodeOverloaded:
		status = http.StatusServiceUnavailable
	}
	if apiErr.Code == hub.CodeUnavailable {
		// The store reports outages itself, once; this is the request's part.
		h.logger.Debug("store unavailable", zap.Stringer("uri", redactedURI(r)), zap.Error(err))
	}
	h.replyErrorStatus(w, r, opts, status, apiErr)
}

func (h *Handler) replyErrorStatus(w http.ResponseWriter, r *http.Request, opts wire.Options, status int, e *hub.Error) {
	h.state.countError(e.Code)
	h.logger.Debug("api error", zap.String("method", r.Method), zap.Stringer("uri", redactedURI(r)),
		zap.Int("return_code", e.Code), zap.String("error_message", e.Error()))
	h.state.replies.Add(1)
	body := wire.NewObject(nil).Int("return_code", int64(e.Code)).String("error_message", e.Error()).Bytes()
	if err := wire.Write(w, status, opts, body, false); err != nil {
		h.logWriteError(r, err)
	}
}

// parseBool reads use_sessions as the original did: 1, true, yes and on are
// true; 0, false, no, off and empty are false.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, true
	case "", "0", "false", "no", "off":
		return false, true
	}
	return false, false
}

// refuseCallback answers a JSON-P request whose callback name is refused
// (wire.ValidCallback) with 400 and the original's reply,
// wire.InvalidCallbackBody, before anything is done: a publish is not
// made, a read is not held. The body runs as nothing; the status is what a
// curl user sees and what makes a <script> element fail (its onerror),
// where a 200 left a hand-written client waiting for a call that never
// came.
func (h *Handler) refuseCallback(w http.ResponseWriter, r *http.Request, opts wire.Options) bool {
	if !opts.CallbackRefused() {
		return false
	}
	// jsonp writes the original's comment in place of the error's object.
	h.replyErrorStatus(w, r, opts, http.StatusBadRequest, errInvalidCallback)
	return true
}

// errInvalidCallback is the refusal of a JSON-P callback name, as logged and
// counted; its reply's body is wire.InvalidCallbackBody.
var errInvalidCallback = &hub.Error{Code: hub.CodeBadRequest, Message: "Invalid JSONP callback name",
	Detail: fmt.Sprintf("it must start with %s, hold only letters, digits, '_' and '.', and be at most %d bytes", wire.CallbackPrefix, wire.MaxCallbackLength)}
