package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/token/tokentest"
)

// testSecret is an HS256 key of the shortest length taken.
const testSecret = "0123456789abcdef0123456789abcdef"

// testEpoch is the clock of the tests that set one.
var testEpoch = time.Unix(1_800_000_000, 0)

// testClock is a settable clock for Options.Now.
type testClock struct{ unix atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.unix.Store(testEpoch.Unix())
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(c.unix.Load(), 0) }
func (c *testClock) add(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// newTestVerifier returns a verifier of o on clock (time.Now when nil),
// closed when the test ends.
func newTestVerifier(t testing.TB, o Options, clock *testClock) *Verifier {
	t.Helper()
	if clock != nil {
		o.Now = clock.now
	}
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// ops are the operations a token may grant.
var ops = []string{"subscribe", "publish", "manage", "status"}

// sign signs claims with method and key.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt are claims expiring exp after testEpoch, granting g.
func claimsAt(exp time.Duration, g Grant) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(testEpoch.Add(exp))},
		Comet:            g,
	}
}

// hsToken is an HS256 token of testSecret, expiring an hour after
// testEpoch.
func hsToken(t testing.TB, g Grant) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(time.Hour, g))
}

// checkToken runs the route's check for op on channels with token as the
// token query parameter.
func checkToken(v *Verifier, token, op, channels string) *hub.Error {
	r := httptest.NewRequest(http.MethodGet, "/channels/x.jsonp?since=0&token="+url.QueryEscape(token), nil)
	_, err := v.Check(r, op, channels)
	return apiError(err)
}

// apiError returns err as the *hub.Error it is; anything else, which a
// refusal never is, as an error with no return code.
func apiError(err error) *hub.Error {
	if err == nil {
		return nil
	}
	var apiErr *hub.Error
	if !errors.As(err, &apiErr) {
		return &hub.Error{Message: err.Error()}
	}
	return apiErr
}

// wantRefused fails unless err is the refusal want (with any detail).
func wantRefused(t *testing.T, what string, err, want *hub.Error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: refused with %q, want accepted", what, err.Error())
	case want != nil && err == nil:
		t.Errorf("%s: accepted, want %q", what, want.Message)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: refused with %q, want %q", what, err.Error(), want.Message)
	case err != nil && err.Code != hub.CodeBadRequest:
		t.Errorf("%s: return_code %d, want -1", what, err.Code)
	}
}

// exp is taken up to the second before it, and leeway moves that edge;
// nbf likewise. Each edge is checked one second either side, first on a
// cold cache and then on a token cached earlier, which must stop being
// taken at the same instant.
func TestJWTTimeEdges(t *testing.T) {
	g := Grant{Subscribe: []string{"news"}}
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("leeway %v", leeway), func(t *testing.T) {
			for _, c := range []struct {
				name string
				exp  time.Duration // from now
				want *hub.Error
			}{
				{"exp one second ahead", time.Second, nil},
				{"exp leeway-1s ago", -leeway + time.Second, nil},
				{"exp leeway ago", -leeway, ErrExpired},
				{"exp leeway+1s ago", -leeway - time.Second, ErrExpired},
			} {
				clock := newTestClock()
				v := newTestVerifier(t, Options{Secret: []byte(testSecret), Leeway: leeway}, clock)
				token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(c.exp, g))
				wantRefused(t, c.name, checkToken(v, token, "subscribe", "news"), c.want)

				// Cached an hour before, taken until the same edge.
				clock = newTestClock()
				clock.add(-time.Hour)
				v = newTestVerifier(t, Options{Secret: []byte(testSecret), Leeway: leeway}, clock)
				wantRefused(t, c.name+", an hour before", checkToken(v, token, "subscribe", "news"), nil)
				clock.add(time.Hour)
				wantRefused(t, c.name+", cached", checkToken(v, token, "subscribe", "news"), c.want)
			}
			for _, c := range []struct {
				name string
				nbf  time.Duration
				want *hub.Error
			}{
				{"nbf now", 0, nil},
				{"nbf leeway+1s ahead", leeway + time.Second, ErrNotYet},
				{"nbf leeway ahead", leeway, nil},
			} {
				v := newTestVerifier(t, Options{Secret: []byte(testSecret), Leeway: leeway}, newTestClock())
				claims := claimsAt(time.Hour, g)
				claims.NotBefore = jwt.NewNumericDate(testEpoch.Add(c.nbf))
				token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
				wantRefused(t, c.name, checkToken(v, token, "subscribe", "news"), c.want)
			}
		})
	}
	// exp is required.
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), tokenClaims{Comet: g})
	wantRefused(t, "no exp", checkToken(v, token, "subscribe", "news"), ErrNoExpiry)
}

// Each route takes tokens signed with its own algorithm and key only: a
// token signed by another key, with another algorithm, with none, or with
// the route's public key used as an HMAC secret, is refused.
func TestJWTAlgorithms(t *testing.T) {
	rsaKey, ecKey := tokentest.Keys(t)
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := Grant{Subscribe: []string{"*"}}
	claims := claimsAt(time.Hour, g)
	hs := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
	rs := sign(t, jwt.SigningMethodRS256, rsaKey, claims)
	es := sign(t, jwt.SigningMethodES256, ecKey, claims)
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims)
	hs384 := sign(t, jwt.SigningMethodHS384, []byte(testSecret), claims)
	ps256 := sign(t, jwt.SigningMethodPS256, rsaKey, claims)
	otherHS := sign(t, jwt.SigningMethodHS256, []byte(strings.ToUpper(testSecret)), claims)
	otherES := sign(t, jwt.SigningMethodES256, otherEC, claims)
	// Algorithm confusion: the public key, which is no secret, as the
	// HMAC key of an HS256 token.
	rsaPEM, ecPEM := tokentest.PublicPEM(t, &rsaKey.PublicKey), tokentest.PublicPEM(t, &ecKey.PublicKey)
	confusedRSA := sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), claims)
	confusedEC := sign(t, jwt.SigningMethodHS256, []byte(ecPEM), claims)
	// An HS256 header on an RS256 signature, and the other way round.
	relabeled := strings.Replace(rs, strings.Split(rs, ".")[0], strings.Split(hs, ".")[0], 1)
	unknownAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX999","typ":"JWT"}`)) + rs[strings.Index(rs, "."):]
	noAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT"}`)) + rs[strings.Index(rs, "."):]

	routes := map[string]*Verifier{
		"HS256": newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock()),
		"RS256": newTestVerifier(t, Options{PublicKey: &rsaKey.PublicKey}, newTestClock()),
		"ES256": newTestVerifier(t, Options{PublicKey: &ecKey.PublicKey}, newTestClock()),
	}
	tokens := map[string]string{
		"hs256": hs, "rs256": rs, "es256": es, "none": none, "hs384": hs384, "ps256": ps256,
		"hs256 other key": otherHS, "es256 other key": otherES,
		"hs256 keyed with the rsa pem": confusedRSA, "hs256 keyed with the ec pem": confusedEC,
		"hs256 header, rs256 signature": relabeled, "unknown alg": unknownAlg, "no alg": noAlg,
	}
	want := map[string]map[string]*hub.Error{
		"HS256": {"hs256": nil, "hs256 other key": ErrSignature, "hs256 keyed with the rsa pem": ErrSignature,
			"hs256 keyed with the ec pem": ErrSignature, "hs256 header, rs256 signature": ErrSignature},
		"RS256": {"rs256": nil},
		"ES256": {"es256": nil, "es256 other key": ErrSignature},
	}
	for route, v := range routes {
		for name, token := range tokens {
			expect, listed := want[route][name]
			if !listed {
				expect = ErrAlgorithm
			}
			wantRefused(t, route+" route, "+name+" token", checkToken(v, token, "subscribe", "news"), expect)
		}
	}
}

// What each operation needs of the comet claim.
func TestJWTClaims(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	reader := hsToken(t, Grant{Subscribe: []string{"inbox-42", "news"}})
	all := hsToken(t, Grant{Subscribe: []string{"*"}, Publish: []string{"*"}})
	publisher := hsToken(t, Grant{Publish: []string{"chat"}})
	manager := hsToken(t, Grant{Manage: true})
	status := hsToken(t, Grant{Status: true})
	nothing := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(testEpoch.Add(time.Hour))})
	for _, c := range []struct {
		name, token, op, channels string
		want                      *hub.Error
	}{
		{"read a covered channel", reader, "subscribe", "inbox-42", nil},
		{"read every channel covered", reader, "subscribe", "inbox-42|news", nil},
		{"read an uncovered channel", reader, "subscribe", "inbox-43", ErrChannelUncovered},
		{"read covered and uncovered", reader, "subscribe", "inbox-42|inbox-43", ErrChannelUncovered},
		{"read uncovered last", reader, "subscribe", "news|inbox-42|inbox-43", ErrChannelUncovered},
		{"read an empty id", reader, "subscribe", "inbox-42|", ErrChannelUncovered},
		{"read with *", all, "subscribe", "anything|at-all", nil},
		{"publish with a subscribe claim", reader, "publish", "inbox-42", ErrChannelUncovered},
		{"publish covered", publisher, "publish", "chat", nil},
		{"publish uncovered", publisher, "publish", "news", ErrChannelUncovered},
		{"publish with *", all, "publish", "news", nil},
		{"read with a publish claim", publisher, "subscribe", "chat", ErrChannelUncovered},
		{"manage without the claim", all, "manage", "", ErrOpUncovered},
		{"manage", manager, "manage", "", nil},
		{"status without the claim", manager, "status", "", ErrOpUncovered},
		{"status", status, "status", "", nil},
		{"no comet claim", nothing, "subscribe", "news", ErrChannelUncovered},
	} {
		wantRefused(t, c.name, checkToken(v, c.token, c.op, c.channels), c.want)
	}
	// The message names the channel that is not covered.
	if err := checkToken(v, reader, "subscribe", "inbox-42|inbox-43"); err == nil || err.Error() != `Channel not covered by token: subscribe "inbox-43"` {
		t.Errorf("got %v", err)
	}
}

func TestJWTIssuerAudience(t *testing.T) {
	v := newTestVerifier(t, Options{Secret: []byte(testSecret), Issuer: "https://auth.example.com", Audience: "comet"}, newTestClock())
	claims := func(iss string, aud ...string) tokenClaims {
		c := claimsAt(time.Hour, Grant{Subscribe: []string{"news"}})
		c.Issuer, c.Audience = iss, aud
		return c
	}
	for _, c := range []struct {
		name   string
		claims tokenClaims
		want   *hub.Error
	}{
		{"both right", claims("https://auth.example.com", "comet"), nil},
		{"audience among others", claims("https://auth.example.com", "other", "comet"), nil},
		{"wrong issuer", claims("https://evil.example.com", "comet"), ErrIssuer},
		{"no issuer", claims("", "comet"), ErrIssuer},
		{"wrong audience", claims("https://auth.example.com", "other"), ErrAudience},
		{"no audience", claims("https://auth.example.com"), ErrAudience},
	} {
		token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), c.claims)
		wantRefused(t, c.name, checkToken(v, token, "subscribe", "news"), c.want)
	}
}

// benchmarkCheck measures the token check of a read of two channels on a
// route that takes tokens signed with method.
func benchmarkCheck(b *testing.B, o Options, method jwt.SigningMethod, key any, cached bool) {
	v := newTestVerifier(b, o, nil)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Comet:            Grant{Subscribe: []string{"news", "inbox-42"}},
	}
	token := sign(b, method, key, claims)
	r := httptest.NewRequest(http.MethodGet, "/channels/news%7Cinbox-42.jsonp?since=128916015846785&cb=_JSONP_1&t=1700000000000.1&token="+token, nil)
	if !cached {
		v.cache = newCache(0, 0) // holds nothing
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := v.Check(r, "subscribe", "news|inbox-42"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWTCheck is the cost of the token check per read: verified
// (HS256, RS256, ES256) and from the cache.
func BenchmarkJWTCheck(b *testing.B) {
	rsaKey, ecKey := tokentest.Keys(b)
	b.Run("HS256/cached", func(b *testing.B) {
		benchmarkCheck(b, Options{Secret: []byte(testSecret)}, jwt.SigningMethodHS256, []byte(testSecret), true)
	})
	b.Run("HS256/verified", func(b *testing.B) {
		benchmarkCheck(b, Options{Secret: []byte(testSecret)}, jwt.SigningMethodHS256, []byte(testSecret), false)
	})
	b.Run("RS256/cached", func(b *testing.B) {
		benchmarkCheck(b, Options{PublicKey: &rsaKey.PublicKey}, jwt.SigningMethodRS256, rsaKey, true)
	})
	b.Run("RS256/verified", func(b *testing.B) {
		benchmarkCheck(b, Options{PublicKey: &rsaKey.PublicKey}, jwt.SigningMethodRS256, rsaKey, false)
	})
	b.Run("ES256/verified", func(b *testing.B) {
		benchmarkCheck(b, Options{PublicKey: &ecKey.PublicKey}, jwt.SigningMethodES256, ecKey, false)
	})
}
