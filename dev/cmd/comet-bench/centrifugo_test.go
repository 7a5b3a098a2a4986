package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The connection token is HS256 with sub, exp and the reader's channels,
// and the connect request asks to recover each channel from its position.
func TestCentrifugoConnectRequest(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	token, err := centrifugoToken([]byte("s3cret"), 7, []string{"a", "b"}, now)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		jwt.RegisteredClaims
		Channels []string `json:"channels"`
	}
	_, err = jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil || claims.Subject != "comet-bench-7" || claims.ExpiresAt.Time != now.Add(centrifugoTokenTTL) ||
		strings.Join(claims.Channels, ",") != "a,b" {
		t.Errorf("token claims %+v, %v", claims, err)
	}

	path := centrifugoConnectPath(token, []string{"a", "b"}, []centrifugoPosition{{3, "e1"}, {9, "e2"}})
	raw, ok := strings.CutPrefix(path, "/connection/uni_sse?cf_connect=")
	if !ok {
		t.Fatalf("path %q", path)
	}
	q, err := url.QueryUnescape(raw)
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal([]byte(q), &req); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"token": token, "subs": map[string]any{
		"a": map[string]any{"recover": true, "epoch": "e1", "offset": 3.0},
		"b": map[string]any{"recover": true, "epoch": "e2", "offset": 9.0},
	}}
	if got, _ := json.Marshal(req); string(got) != mustJSON(want) {
		t.Errorf("connect request %s, want %s", got, mustJSON(want))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A fan-out run against a server that speaks Centrifugo's uni_sse and
// publish API: every publication reaches every reader once and in order,
// readers have several channels in one connection, and streams that end
// (with a disconnect push or without) are reopened and recover what was
// published meanwhile. -status counts the connect pushes.
func TestFanoutAgainstFakeCentrifugo(t *testing.T) {
	for _, client := range []string{"lean", "net/http"} {
		t.Run(strings.ReplaceAll(client, "/", "_"), func(t *testing.T) {
			f := newFakeCentrifugo("tok", "key", 5, 5*time.Millisecond)
			srv := httptest.NewServer(f)
			defer srv.Close()
			cfg := fanoutConfig{
				targetConfig: targetConfig{Target: srv.URL}, API: apiCentrifugo, Transport: transportSSE, Client: client,
				TokenSecret: "tok", APIKey: "key",
				Prefix: "fake", Channels: 3, Readers: 9, PerRead: 2, Messages: 40, Rate: 100, Size: 80, Publishers: 1,
				Warmup: 50 * time.Millisecond, Duration: time.Minute, Drain: 10 * time.Second, SetupTimeout: 10 * time.Second,
				UseStatus: true, ReadTimeout: 10 * time.Second, DialConcurrency: 4,
			}
			// A publication before the run is not this run's: readers
			// start after the marker.
			if _, err := (&endpoint{base: srv.URL, client: srv.Client(), header: map[string][]string{"X-Api-Key": {"key"}}}).
				centrifugoPublish(context.Background(), "fake-0", "earlier"); err != nil {
				t.Fatal(err)
			}
			rep, err := runFanout(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			// Each channel has 9*2/3 = 6 readers.
			total := int64(rep.WarmupMessages + cfg.Messages)
			if !rep.ok() || rep.Delivered != total*6 || rep.Foreign != 0 || rep.Reordered != 0 {
				t.Errorf("delivered %d of %d, lost %d, duplicated %d, reordered %d, foreign %d, ok %v (errors %v, %s)",
					rep.Delivered, total*6, rep.Lost, rep.Duplicated, rep.Reordered, rep.Foreign, rep.ok(), rep.Errors, rep.LastError)
			}
			if rep.Latency.Count != uint64(cfg.Messages*6) {
				t.Errorf("timed deliveries %d, want %d", rep.Latency.Count, cfg.Messages*6)
			}
			if f.streams.Load() <= int64(cfg.Readers) || f.recovered.Load() == 0 {
				t.Errorf("%d streams, %d publications recovered: the test did not cover reconnecting", f.streams.Load(), f.recovered.Load())
			}
			if f.badTokens.Load() != 0 {
				t.Errorf("%d tokens refused", f.badTokens.Load())
			}
			for kind := range rep.Errors {
				if kind != "read_stream_ended" && kind != "read_disconnect_3001" {
					t.Errorf("errors: %v", rep.Errors)
					break
				}
			}
			if !strings.HasPrefix(rep.HeldCheck, "centrifugo connect pushes: 9 held") {
				t.Errorf("held check %q, want the connect pushes", rep.HeldCheck)
			}
		})
	}
}

// A wrong API key fails the setup with the server's answer; a wrong token
// secret leaves the readers disconnected, which the setup reports.
func TestFakeCentrifugoRefusals(t *testing.T) {
	f := newFakeCentrifugo("tok", "key", 100, time.Second)
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := fanoutConfig{
		targetConfig: targetConfig{Target: srv.URL}, API: apiCentrifugo, Transport: transportSSE,
		TokenSecret: "tok", APIKey: "wrong",
		Prefix: "refused", Channels: 1, Readers: 2, PerRead: 1, Messages: 1, Rate: 10, Publishers: 1,
		Duration: time.Minute, SetupTimeout: time.Second, UseStatus: true, ReadTimeout: 10 * time.Second,
	}
	if _, err := runFanout(context.Background(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("a wrong API key: %v, want HTTP 401", err)
	}
	cfg.TokenSecret, cfg.APIKey = "wrong", "key"
	_, err := runFanout(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "only 0 of 2 reads held") {
		t.Errorf("a wrong token secret: %v, want the readers not held", err)
	}
	if f.badTokens.Load() == 0 {
		t.Error("no token was refused")
	}
}

func TestCentrifugoConfigLimits(t *testing.T) {
	ok := func(c *fanoutConfig) {
		c.API, c.Transport, c.TokenSecret, c.APIKey, c.PerRead = apiCentrifugo, transportSSE, "tok", "key", 2
	}
	for _, tc := range []struct {
		spoil   func(*fanoutConfig)
		wantErr string
	}{
		{ok, ""},
		{func(c *fanoutConfig) { ok(c); c.Transport = transportLongPoll }, "give -transport sse"},
		{func(c *fanoutConfig) { ok(c); c.TokenSecret = "" }, "-centrifugo-token-secret"},
		{func(c *fanoutConfig) { ok(c); c.APIKey = "" }, "-centrifugo-api-key"},
		{func(c *fanoutConfig) { ok(c); c.MaxMessages = 5 }, "history_size"},
		{func(c *fanoutConfig) { ok(c); c.Expvar = "http://127.0.0.1:1/debug/vars" }, "-expvar"},
		{func(c *fanoutConfig) { c.APIKey = "key" }, "apply to -api centrifugo only"},
	} {
		c := validFanout()
		c.Channels = 4
		tc.spoil(&c)
		err := c.validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: validate() = %v, want %q", c, err, tc.wantErr)
		}
	}
}
