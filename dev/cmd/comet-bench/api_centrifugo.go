package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo's side of a run (-api centrifugo): its unidirectional
// Server-Sent Events transport (uni_sse) for the readers and its server API
// for publishing, as Centrifugo v6 serves them (internal/unisse/handler.go;
// the JSON protocol of github.com/centrifugal/protocol):
//
//   - a reader GETs <target>/connection/uni_sse?cf_connect=<connect request
//     as JSON>, the request's token an HS256 connection token whose
//     "channels" claim subscribes the connection to its channels on the
//     server's side; every event's data is one Push: first a "connect" push
//     whose result lists the subscriptions, then a "pub" push per
//     publication ({"channel": ..., "pub": {"data": ..., "offset": N}}),
//     and "{}" as a ping.
//   - publishing is POST <publish-target>/api/publish with X-API-Key and
//     {"channel": ..., "data": ...}; the reply's result has the
//     publication's offset and the channel's epoch.
//
// The channels' namespace must keep history and force recovery
// (history_size, history_ttl, force_recovery): readers start, and resume
// after a reconnection, from a position in the channel's stream, as comet
// readers start from since and resume with Last-Event-ID.
// scripts/bench-peers.sh writes such a config.
const (
	centrifugoSSEPath     = "/connection/uni_sse"
	centrifugoPublishPath = "/api/publish"
	// centrifugoTokenTTL is how long a reader's connection token lasts:
	// longer than any run, since a token that expires mid-run disconnects
	// the reader.
	centrifugoTokenTTL = 24 * time.Hour
)

// centrifugoPosition is a place in a channel's stream: the offset of a
// publication and the epoch of the stream it belongs to.
type centrifugoPosition struct {
	Offset uint64
	Epoch  string
}

// centrifugoPublish publishes content to a channel through the server API
// and returns the publication's position. The content goes as a JSON
// string: Centrifugo's data is JSON, and comes back to the readers as is.
func (e *endpoint) centrifugoPublish(ctx context.Context, channel, content string) (centrifugoPosition, error) {
	fail := func(err error) (centrifugoPosition, error) {
		return centrifugoPosition{}, fmt.Errorf("publishing to %q: %w", channel, err)
	}
	body, err := json.Marshal(map[string]string{"channel": channel, "data": content})
	if err != nil {
		return fail(err)
	}
	req, err := e.newRequest(ctx, http.MethodPost, centrifugoPublishPath, strings.NewReader(string(body)))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(&apiError{Status: resp.StatusCode, Message: abbreviate(b)})
	}
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Result *struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fail(fmt.Errorf("%w: %q: %w", errBadReply, abbreviate(b), err))
	}
	if r.Error != nil {
		return fail(&apiError{Status: resp.StatusCode, Code: r.Error.Code, Message: r.Error.Message})
	}
	if r.Result == nil {
		return fail(fmt.Errorf("%w: %q has no result", errBadReply, abbreviate(b)))
	}
	return centrifugoPosition{Offset: r.Result.Offset, Epoch: r.Result.Epoch}, nil
}

// centrifugoToken is a connection token for reader i, subscribing it to
// channels: HS256 with the configured secret, claims sub, exp and channels.
func centrifugoToken(secret []byte, i int, channels []string, now time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":      "comet-bench-" + strconv.Itoa(i),
		"exp":      now.Add(centrifugoTokenTTL).Unix(),
		"channels": channels,
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("signing the connection token of reader %d: %w", i, err)
	}
	return s, nil
}

// centrifugoConnectPath is the uni_sse path of a connection with token,
// asking to recover each channel from its position: the server then sends,
// in the connect push, the publications after it.
func centrifugoConnectPath(token string, channels []string, from []centrifugoPosition) string {
	type sub struct {
		Recover bool   `json:"recover"`
		Epoch   string `json:"epoch"`
		Offset  uint64 `json:"offset"`
	}
	req := struct {
		Token string         `json:"token"`
		Subs  map[string]sub `json:"subs"`
	}{Token: token, Subs: make(map[string]sub, len(channels))}
	for j, ch := range channels {
		req.Subs[ch] = sub{Recover: true, Epoch: from[j].Epoch, Offset: from[j].Offset}
	}
	b, _ := json.Marshal(req) // strings, bools and numbers: cannot fail
	return centrifugoSSEPath + "?cf_connect=" + url.QueryEscape(string(b))
}

// centrifugoPush is the part of a Push the readers use.
type centrifugoPush struct {
	Channel string                 `json:"channel,omitempty"`
	Pub     *centrifugoPublication `json:"pub,omitempty"`
	Connect *struct {
		Subs map[string]centrifugoSubscribed `json:"subs"`
	} `json:"connect,omitempty"`
	Disconnect *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"disconnect,omitempty"`
}

type centrifugoPublication struct {
	Data   json.RawMessage `json:"data"`
	Offset uint64          `json:"offset"`
}

// centrifugoSubscribed is a subscription in the connect push: where the
// channel's stream is, and, when recovery was asked, whether it succeeded
// and the publications it recovered.
type centrifugoSubscribed struct {
	Recoverable   bool                    `json:"recoverable"`
	Epoch         string                  `json:"epoch"`
	Offset        uint64                  `json:"offset"`
	WasRecovering bool                    `json:"was_recovering"`
	Recovered     bool                    `json:"recovered"`
	Publications  []centrifugoPublication `json:"publications"`
}

// centrifugoDisconnect is a disconnect push: the server ends the
// connection with a code and a reason.
type centrifugoDisconnect struct {
	Code   int
	Reason string
}

func (d *centrifugoDisconnect) Error() string {
	return fmt.Sprintf("centrifugo disconnect %d: %s", d.Code, d.Reason)
}
