package token

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/token/tokentest"
)

// Where a token may come from, and what is refused before it is decoded.
func TestJWTRequestToken(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	token := hsToken(t, Grant{Subscribe: []string{"news"}})
	other := hsToken(t, Grant{Subscribe: []string{"news", "more"}})
	for _, c := range []struct {
		name   string
		query  string
		header []string
		want   *hub.Error
	}{
		{"query", "since=0&token=" + token, nil, nil},
		{"query, escaped name", "tok%65n=" + token, nil, nil},
		{"bearer", "since=0", []string{"Bearer " + token}, nil},
		{"bearer, any case", "", []string{"bEaReR " + token}, nil},
		{"both, the same", "token=" + token, []string{"Bearer " + token}, nil},
		{"both, different", "token=" + token, []string{"Bearer " + other}, ErrTwice},
		{"two in the query", "token=" + token + "&token=" + token, nil, ErrTwice},
		{"two bearers", "", []string{"Bearer " + token, "Bearer " + other}, ErrTwice},
		{"none", "since=0", nil, ErrMissing},
		{"empty", "token=", nil, ErrMissing},
		{"basic auth is not a token", "", []string{"Basic dXNlcjpwYXNz"}, ErrMissing},
		{"basic auth beside a token", "token=" + token, []string{"Basic dXNlcjpwYXNz"}, nil},
		{"bad escape", "token=%zz", nil, ErrMalformed},
		{"too long", "token=" + strings.Repeat("a", MaxLength+1), nil, ErrTooLong},
		{"too long, escaped", "token=" + strings.Repeat("%61", MaxLength+1), nil, ErrTooLong},
		{"too long bearer", "", []string{"Bearer " + strings.Repeat("a", MaxLength+1)}, ErrTooLong},
		{"garbage", "token=not.a.token", nil, ErrMalformed},
	} {
		r := httptest.NewRequest(http.MethodGet, "/channels/news.json?"+c.query, nil)
		for _, v := range c.header {
			r.Header.Add("Authorization", v)
		}
		_, err := v.Check(r, "subscribe", "news")
		wantRefused(t, c.name, apiError(err), c.want)
	}
}

// padToken returns a valid HS256 token of exactly n bytes, its claims
// padded with an unused claim and its header with a kid (base64 reaches
// only three lengths in four, so the header moves the payload's).
func padToken(t testing.TB, n int) string {
	t.Helper()
	for kid := range 4 {
		for pad := max(0, n*3/4-300); ; pad++ {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"exp":   testEpoch.Add(time.Hour).Unix(),
				"comet": map[string]any{"subscribe": []string{"news"}},
				"pad":   strings.Repeat("x", pad),
			})
			tok.Header["kid"] = strings.Repeat("k", kid)
			s, err := tok.SignedString([]byte(testSecret))
			if err != nil {
				t.Fatal(err)
			}
			if len(s) == n {
				return s
			}
			if len(s) > n {
				break
			}
		}
	}
	t.Fatalf("no token of %d bytes", n)
	return ""
}

// A token of MaxLength bytes is verified; one byte more is refused
// before anything is decoded.
func TestJWTMaxTokenLength(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	atLimit := padToken(t, MaxLength)
	wantRefused(t, "a token at the limit", checkToken(v, atLimit, "subscribe", "news"), nil)
	r := httptest.NewRequest(http.MethodPost, "/channels/news.json", nil)
	r.Header.Set("Authorization", "Bearer "+atLimit)
	_, err := v.Check(r, "subscribe", "news")
	wantRefused(t, "a bearer at the limit", apiError(err), nil)
	over := padToken(t, MaxLength+1)
	wantRefused(t, "a token one byte over", checkToken(v, over, "subscribe", "news"), ErrTooLong)
}

// FuzzJWTCheck feeds hostile requests to the token check of an HS256 route:
// whatever the query and the Authorization header hold, the check does not
// panic, and it refuses every token but the valid ones it was seeded with
// (no fuzzer forges an HMAC), with an error of the API's shape that never
// holds the token.
func FuzzJWTCheck(f *testing.F) {
	v := newTestVerifier(f, Options{Secret: []byte(testSecret), Issuer: "iss", Audience: "aud", Leeway: time.Second}, newTestClock())
	valid := func(g Grant) string {
		c := claimsAt(time.Hour, g)
		c.Issuer, c.Audience = "iss", jwt.ClaimStrings{"aud"}
		return sign(f, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	good := valid(Grant{Subscribe: []string{"news"}, Publish: []string{"*"}, Manage: true})
	parts := strings.Split(good, ".")
	rsaKey, _ := tokentest.Keys(f)
	for _, seed := range []string{
		good,
		valid(Grant{Subscribe: []string{"other"}}),
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "A",
		parts[0] + ".." + parts[2],
		"..",
		"",
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsAt(time.Hour, Grant{Subscribe: []string{"*"}})),
		sign(f, jwt.SigningMethodRS256, rsaKey, claimsAt(time.Hour, Grant{Subscribe: []string{"*"}})),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon","comet":{"subscribe":"news"}}`)) + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":["HS256"]}`)) + "." + parts[1] + "." + parts[2],
		strings.Repeat("A", MaxLength) + ".." + "x",
	} {
		f.Add("since=0&token="+url.QueryEscape(seed), "", "news")
		f.Add("", "Bearer "+seed, "news|more")
	}
	f.Add("token=%", "Bearer", "")
	f.Add("token=a&tok%65n=b", "bearer  x", "*")
	validTokens := map[string]bool{good: true}
	f.Fuzz(func(t *testing.T, query, authorization, channels string) {
		r := httptest.NewRequest(http.MethodGet, "/channels/x.json", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authorization)
		for _, op := range ops {
			_, err := v.Check(r, op, channels)
			apiErr := apiError(err)
			if apiErr == nil {
				token, _ := FromRequest(r)
				if !validTokens[token] {
					t.Fatalf("%s accepted with query %q, authorization %q", op, query, authorization)
				}
				continue
			}
			if apiErr.Code != hub.CodeBadRequest || !strings.Contains(apiErr.Message, "oken") {
				t.Fatalf("refused with %d %q", apiErr.Code, apiErr.Error())
			}
			if token, _ := FromRequest(r); len(token) > 8 && strings.Contains(apiErr.Error(), token) {
				t.Fatalf("the error %q holds the token", apiErr.Error())
			}
		}
	})
}
