package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeCentrifugo is an httptest handler that speaks as much of Centrifugo
// v6 as a fan-out over -api centrifugo uses, as its source does
// (internal/unisse/handler.go, the server API's publish, centrifuge's
// connect and recovery), with one node's memory history:
//
//   - POST /api/publish with X-API-Key and {"channel", "data"}: the
//     publication gets the channel's next offset; the reply is
//     {"result": {"offset", "epoch"}}, or {"error": {...}} for a wrong key.
//   - GET /connection/uni_sse?cf_connect={"token", "subs"}: the token is
//     checked (HS256, secret, exp) and its "channels" claim subscribes the
//     connection; a channel in subs with recover, the stream's epoch and
//     an offset gets the publications after it in the connect push.
//     The stream is "\r\n", then "data: <push>\n\n" events: the connect
//     push, then a pub push per publication (those waiting written
//     together, as Centrifugo batches them), "{}" pings; it ends after
//     maxEvents publications, alternately with a disconnect push and
//     without, so that readers reconnect and recover mid-run.
type fakeCentrifugo struct {
	secret, apiKey string
	maxEvents      int
	ping           time.Duration

	mu       sync.Mutex
	channels map[string][]centrifugoPublication
	changed  chan struct{}

	streams atomic.Int64
	// recovered counts publications sent in connect pushes.
	recovered atomic.Int64
	// badTokens counts connections refused for their token.
	badTokens atomic.Int64
}

const fakeCentrifugoEpoch = "fake"

func newFakeCentrifugo(secret, apiKey string, maxEvents int, ping time.Duration) *fakeCentrifugo {
	return &fakeCentrifugo{secret: secret, apiKey: apiKey, maxEvents: maxEvents, ping: ping,
		channels: map[string][]centrifugoPublication{}, changed: make(chan struct{})}
}

func (f *fakeCentrifugo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == centrifugoPublishPath:
		f.publish(w, r)
	case r.Method == http.MethodGet && r.URL.Path == centrifugoSSEPath:
		f.stream(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeCentrifugo) publish(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-API-Key") != f.apiKey {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Channel == "" || len(req.Data) == 0 {
		io.WriteString(w, `{"error":{"code":107,"message":"bad request"}}`)
		return
	}
	f.mu.Lock()
	offset := uint64(len(f.channels[req.Channel]) + 1)
	f.channels[req.Channel] = append(f.channels[req.Channel], centrifugoPublication{Data: req.Data, Offset: offset})
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	fmt.Fprintf(w, `{"result":{"offset":%d,"epoch":%q}}`, offset, fakeCentrifugoEpoch)
}

// after returns the publications of channel after offset, the channel's
// top offset, and the channel that wakes on the next publish.
func (f *fakeCentrifugo) after(channel string, offset uint64) ([]centrifugoPublication, uint64, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pubs := f.channels[channel]
	return append([]centrifugoPublication(nil), pubs[min(offset, uint64(len(pubs))):]...), uint64(len(pubs)), f.changed
}

func (f *fakeCentrifugo) stream(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		Subs  map[string]struct {
			Recover bool   `json:"recover"`
			Epoch   string `json:"epoch"`
			Offset  uint64 `json:"offset"`
		} `json:"subs"`
	}
	if err := json.Unmarshal([]byte(r.URL.Query().Get("cf_connect")), &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var claims struct {
		jwt.RegisteredClaims
		Channels []string `json:"channels"`
	}
	_, err := jwt.ParseWithClaims(req.Token, &claims, func(*jwt.Token) (any, error) { return []byte(f.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil || claims.Subject == "" {
		f.badTokens.Add(1)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "\r\ndata: {\"disconnect\":{\"code\":3500,\"reason\":\"invalid token\"}}\n\n")
		return
	}
	n := f.streams.Add(1)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	io.WriteString(w, "\r\n")

	// Subscribe, recovering where asked, and send the connect push.
	top := map[string]uint64{}
	subs := map[string]centrifugoSubscribed{}
	for _, ch := range claims.Channels {
		s := centrifugoSubscribed{Recoverable: true, Epoch: fakeCentrifugoEpoch}
		want, ok := req.Subs[ch]
		if ok && want.Recover {
			s.WasRecovering = true
			s.Recovered = want.Epoch == fakeCentrifugoEpoch
			if s.Recovered {
				s.Publications, s.Offset, _ = f.after(ch, want.Offset)
				f.recovered.Add(int64(len(s.Publications)))
			}
		}
		if !s.Recovered {
			_, s.Offset, _ = f.after(ch, 0)
		}
		top[ch] = s.Offset
		subs[ch] = s
	}
	connect, _ := json.Marshal(map[string]any{"connect": map[string]any{"client": "c", "version": "fake", "subs": subs, "ping": 25, "session": "s"}})
	fmt.Fprintf(w, "data: %s\n\n", connect)
	w.(http.Flusher).Flush()

	ping := time.NewTicker(f.ping)
	defer ping.Stop()
	for events := 0; events < f.maxEvents; {
		var batch strings.Builder
		var changed chan struct{}
		for _, ch := range claims.Channels {
			pubs, last, c := f.after(ch, top[ch])
			changed = c
			for _, p := range pubs {
				push, _ := json.Marshal(centrifugoPush{Channel: ch, Pub: &p})
				fmt.Fprintf(&batch, "data: %s\n\n", push)
				events++
			}
			top[ch] = last
		}
		if batch.Len() > 0 {
			io.WriteString(w, batch.String())
			w.(http.Flusher).Flush()
			continue
		}
		select {
		case <-changed:
		case <-ping.C:
			io.WriteString(w, "data: {}\n\n")
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
	if n%2 == 0 {
		io.WriteString(w, "data: {\"disconnect\":{\"code\":3001,\"reason\":\"shutdown\"}}\n\n")
	}
}
