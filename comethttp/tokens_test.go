package comethttp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/token"
)

// testSecret is an HS256 key of the shortest length taken.
const testSecret = "0123456789abcdef0123456789abcdef"

// testEpoch is the clock of the tests' verifiers.
var testEpoch = time.Unix(1_800_000_000, 0)

// testVerifier is an HS256 verifier of testSecret, its clock at testEpoch.
func testVerifier(t testing.TB) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(token.Options{Secret: []byte(testSecret), Now: func() time.Time { return testEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// tokenHandler is a stopped handler on state, with status enabled, that
// asks testVerifier for a token for the operations in require (default:
// all).
func tokenHandler(t testing.TB, state *HubState, require ...string) *Handler {
	t.Helper()
	return handlerOn(t, state, Options{EnableStatus: true, Verifier: testVerifier(t), Require: require})
}

// hsToken is an HS256 token of testSecret, expiring an hour after
// testEpoch.
func hsToken(t testing.TB, g token.Grant) string {
	t.Helper()
	signed, err := token.Sign(token.Claims{Grant: g, ExpiresAt: testEpoch.Add(time.Hour)}, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// redactedURI keeps a token out of a log line.
func TestRedactedURI(t *testing.T) {
	for _, uri := range []string{
		"/channels/a.jsonp?since=0&token=SECRET&cb=_JSONP_1",
		"/channels/a.jsonp?tok%65n=SECRET",
		"/channels/a.jsonp?token=SECRET&token=SECRET",
		"/channels/a.jsonp?TOKEN=x&token=SECRET",
	} {
		r := httptest.NewRequest(http.MethodGet, uri, nil)
		got := redactedURI(r).String()
		if strings.Contains(got, "SECRET") || !strings.HasPrefix(got, "/channels/a.jsonp?") {
			t.Errorf("%s logged as %s", uri, got)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/channels/a.jsonp?since=5&cb=x", nil)
	if got := redactedURI(r).String(); got != "/channels/a.jsonp?since=5&cb=x" {
		t.Errorf("a URI without a token logged as %s", got)
	}
}

// An event stream is checked as a read is, by the handler's own path: every
// channel covered by the token, and nothing asked on a route whose reads
// need no token. A refused stream gets the read's 403 before it starts.
func TestStreamTokenCheck(t *testing.T) {
	signed := hsToken(t, token.Grant{Subscribe: []string{"inbox-42"}})
	for _, tc := range []struct {
		name, target string
		jwt          bool
		require      []string
		refusal      *hub.Error
	}{
		{"covered", "/channels/inbox-42.sse?token=" + signed, true, nil, nil},
		{"not covered", "/channels/inbox-42%7Cinbox-43.sse?token=" + signed, true, nil, token.ErrChannelUncovered},
		{"no token", "/channels/inbox-42.sse", true, nil, token.ErrMissing},
		{"reads need no token", "/channels/inbox-43.sse", true, []string{OpPublish}, nil},
		{"no jwt block", "/channels/inbox-43.sse", false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHandler(t, hub.Config{})
			if tc.jwt {
				h = tokenHandler(t, h.state, tc.require...)
			}
			for _, ch := range []string{"inbox-42", "inbox-43"} {
				if err := h.hub.RegisterChannel(t.Context(), ch, false, 0); err != nil {
					t.Fatal(err)
				}
			}
			rec, _ := serve(t, h, httptest.NewRequest(http.MethodGet, tc.target, nil))
			if tc.refusal == nil {
				if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" {
					t.Fatalf("HTTP %d %s %q, want the stream", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
				}
				return
			}
			if rec.Code != http.StatusForbidden || replyCode(t, rec) != hub.CodeBadRequest ||
				!strings.Contains(rec.Body.String(), tc.refusal.Message) {
				t.Fatalf("HTTP %d %q, want 403 with -1 %q", rec.Code, rec.Body, tc.refusal.Message)
			}
		})
	}
}
