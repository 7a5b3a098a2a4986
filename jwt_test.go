package comet

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
)

// testSecret is an HS256 key of the shortest length taken.
const testSecret = "0123456789abcdef0123456789abcdef"

// testEpoch is the clock of the tests that set one.
var testEpoch = time.Unix(1_800_000_000, 0)

// testClock is a settable clock for JWT.now.
type testClock struct{ unix atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.unix.Store(testEpoch.Unix())
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(c.unix.Load(), 0) }
func (c *testClock) add(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// provisionJWT provisions j for a route that allows every operation (or
// allowed), on clock.
func provisionJWT(t testing.TB, j *JWT, clock *testClock, allowed ...string) *JWT {
	t.Helper()
	if len(allowed) == 0 {
		allowed = allOps
	}
	if clock != nil {
		j.now = clock.now
	}
	if err := j.provision(zap.NewNop(), allowed); err != nil {
		t.Fatal(err)
	}
	return j
}

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
func claimsAt(exp time.Duration, g grant) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(testEpoch.Add(exp))},
		Comet:            g,
	}
}

// hsToken is an HS256 token of testSecret, expiring an hour after
// testEpoch.
func hsToken(t testing.TB, g grant) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(time.Hour, g))
}

// checkToken runs the route's check for op on channels with token as the
// token query parameter.
func checkToken(j *JWT, token, op, channels string) *hub.Error {
	r := httptest.NewRequest(http.MethodGet, "/channels/x.jsonp?since=0&token="+url.QueryEscape(token), nil)
	_, apiErr := j.check(r, op, channels)
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

func pemFile(t *testing.T, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func publicPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

var (
	testKeysOnce sync.Once
	testRSAKey   *rsa.PrivateKey
	testECKey    *ecdsa.PrivateKey
)

// testKeys returns an RSA and an ECDSA P-256 key, generated once per test
// binary (RSA keys take a while).
func testKeys(t testing.TB) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	testKeysOnce.Do(func() {
		var err error
		if testRSAKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if testECKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return testRSAKey, testECKey
}

func TestJWTConfig(t *testing.T) {
	rsaKey, ecKey := testKeys(t)
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	ecPrivDER, _ := x509.MarshalECPrivateKey(ecKey)
	t.Setenv("COMET_TEST_JWT_KEY", testSecret)
	t.Setenv("COMET_TEST_JWT_PEM", publicPEM(t, &ecKey.PublicKey))

	for _, c := range []struct {
		name    string
		jwt     JWT
		allowed []string
		wantAlg string
		wantErr string
	}{
		{name: "hs256", jwt: JWT{Key: testSecret}, wantAlg: "HS256"},
		{name: "hs256 from env", jwt: JWT{Key: "{env.COMET_TEST_JWT_KEY}"}, wantAlg: "HS256"},
		{name: "hs256 31 bytes", jwt: JWT{Key: testSecret[1:]}, wantErr: "key: 31 bytes, HS256 wants at least 32"},
		{name: "env unset", jwt: JWT{Key: "{env.COMET_TEST_UNSET}"}, wantErr: "key: 0 bytes"},
		{name: "rs256 file", jwt: JWT{PublicKey: pemFile(t, "PUBLIC KEY", rsaDER)}, wantAlg: "RS256"},
		{name: "rs256 pkcs1", jwt: JWT{PublicKey: pemFile(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey))}, wantAlg: "RS256"},
		{name: "es256 inline", jwt: JWT{PublicKey: publicPEM(t, &ecKey.PublicKey)}, wantAlg: "ES256"},
		{name: "es256 from env", jwt: JWT{PublicKey: "{env.COMET_TEST_JWT_PEM}"}, wantAlg: "ES256"},
		{name: "rsa 1024", jwt: JWT{PublicKey: publicPEM(t, &smallRSA.PublicKey)}, wantErr: "an RSA key of 1024 bits, want at least 2048"},
		{name: "p-384", jwt: JWT{PublicKey: publicPEM(t, &p384.PublicKey)}, wantErr: "ES256 wants P-256"},
		{name: "private key", jwt: JWT{PublicKey: pemFile(t, "EC PRIVATE KEY", ecPrivDER)}, wantErr: "a private key does not belong on the server"},
		{name: "missing file", jwt: JWT{PublicKey: filepath.Join(t.TempDir(), "none.pem")}, wantErr: "reading the PEM file"},
		{name: "not pem", jwt: JWT{PublicKey: "-----BEGIN nonsense"}, wantErr: "no PEM block found"},
		{name: "no key", jwt: JWT{}, wantErr: "no key"},
		{name: "both keys", jwt: JWT{Key: testSecret, PublicKey: publicPEM(t, &ecKey.PublicKey)}, wantErr: "not both"},
		{name: "negative leeway", jwt: JWT{Key: testSecret, Leeway: caddy.Duration(-time.Second)}, wantErr: "leeway must not be negative"},
		{name: "unknown op", jwt: JWT{Key: testSecret, Require: []string{"read"}}, wantErr: `unknown operation "read"`},
		{name: "op not allowed", jwt: JWT{Key: testSecret, Require: []string{OpPublish}}, allowed: []string{OpSubscribe}, wantErr: "publish is not allowed on this route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			allowed := c.allowed
			if allowed == nil {
				allowed = allOps
			}
			j := c.jwt
			err := j.provision(zap.NewNop(), allowed)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), testSecret[1:]) {
					t.Fatalf("the error %q holds the key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if j.alg != c.wantAlg {
				t.Fatalf("algorithm %s, want %s", j.alg, c.wantAlg)
			}
		})
	}
}

// require defaults to what the route allows, and authorize asks for a
// token only for those operations.
func TestJWTRequireDefaultsToAllowed(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, nil, OpSubscribe, OpPublish)
	if !j.required[OpSubscribe] || !j.required[OpPublish] || j.required[OpManage] || j.required[OpStatus] {
		t.Fatalf("required %v, want subscribe and publish", j.required)
	}
	j = provisionJWT(t, &JWT{Key: testSecret, Require: []string{OpPublish}}, nil)
	if j.required[OpSubscribe] || !j.required[OpPublish] {
		t.Fatalf("required %v, want publish only", j.required)
	}
}

// exp is taken up to the second before it, and leeway moves that edge;
// nbf likewise. Each edge is checked one second either side, first on a
// cold cache and then on a token cached earlier, which must stop being
// taken at the same instant.
func TestJWTTimeEdges(t *testing.T) {
	g := grant{Subscribe: []string{"news"}}
	for _, leeway := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("leeway %v", leeway), func(t *testing.T) {
			for _, c := range []struct {
				name string
				exp  time.Duration // from now
				want *hub.Error
			}{
				{"exp one second ahead", time.Second, nil},
				{"exp leeway-1s ago", -leeway + time.Second, nil},
				{"exp leeway ago", -leeway, errTokenExpired},
				{"exp leeway+1s ago", -leeway - time.Second, errTokenExpired},
			} {
				clock := newTestClock()
				j := provisionJWT(t, &JWT{Key: testSecret, Leeway: caddy.Duration(leeway)}, clock)
				token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsAt(c.exp, g))
				wantRefused(t, c.name, checkToken(j, token, OpSubscribe, "news"), c.want)

				// Cached an hour before, taken until the same edge.
				clock = newTestClock()
				clock.add(-time.Hour)
				j = provisionJWT(t, &JWT{Key: testSecret, Leeway: caddy.Duration(leeway)}, clock)
				wantRefused(t, c.name+", an hour before", checkToken(j, token, OpSubscribe, "news"), nil)
				clock.add(time.Hour)
				wantRefused(t, c.name+", cached", checkToken(j, token, OpSubscribe, "news"), c.want)
			}
			for _, c := range []struct {
				name string
				nbf  time.Duration
				want *hub.Error
			}{
				{"nbf now", 0, nil},
				{"nbf leeway+1s ahead", leeway + time.Second, errTokenNotYet},
				{"nbf leeway ahead", leeway, nil},
			} {
				j := provisionJWT(t, &JWT{Key: testSecret, Leeway: caddy.Duration(leeway)}, newTestClock())
				claims := claimsAt(time.Hour, g)
				claims.NotBefore = jwt.NewNumericDate(testEpoch.Add(c.nbf))
				token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
				wantRefused(t, c.name, checkToken(j, token, OpSubscribe, "news"), c.want)
			}
		})
	}
	// exp is required.
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), tokenClaims{Comet: g})
	wantRefused(t, "no exp", checkToken(j, token, OpSubscribe, "news"), errTokenNoExpiry)
}

// Each route takes tokens signed with its own algorithm and key only: a
// token signed by another key, with another algorithm, with none, or with
// the route's public key used as an HMAC secret, is refused.
func TestJWTAlgorithms(t *testing.T) {
	rsaKey, ecKey := testKeys(t)
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := grant{Subscribe: []string{"*"}}
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
	rsaPEM, ecPEM := publicPEM(t, &rsaKey.PublicKey), publicPEM(t, &ecKey.PublicKey)
	confusedRSA := sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), claims)
	confusedEC := sign(t, jwt.SigningMethodHS256, []byte(ecPEM), claims)
	// An HS256 header on an RS256 signature, and the other way round.
	relabeled := strings.Replace(rs, strings.Split(rs, ".")[0], strings.Split(hs, ".")[0], 1)
	unknownAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX999","typ":"JWT"}`)) + rs[strings.Index(rs, "."):]
	noAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT"}`)) + rs[strings.Index(rs, "."):]

	routes := map[string]*JWT{
		"HS256": provisionJWT(t, &JWT{Key: testSecret}, newTestClock()),
		"RS256": provisionJWT(t, &JWT{PublicKey: rsaPEM}, newTestClock()),
		"ES256": provisionJWT(t, &JWT{PublicKey: ecPEM}, newTestClock()),
	}
	tokens := map[string]string{
		"hs256": hs, "rs256": rs, "es256": es, "none": none, "hs384": hs384, "ps256": ps256,
		"hs256 other key": otherHS, "es256 other key": otherES,
		"hs256 keyed with the rsa pem": confusedRSA, "hs256 keyed with the ec pem": confusedEC,
		"hs256 header, rs256 signature": relabeled, "unknown alg": unknownAlg, "no alg": noAlg,
	}
	want := map[string]map[string]*hub.Error{
		"HS256": {"hs256": nil, "hs256 other key": errTokenSignature, "hs256 keyed with the rsa pem": errTokenSignature,
			"hs256 keyed with the ec pem": errTokenSignature, "hs256 header, rs256 signature": errTokenSignature},
		"RS256": {"rs256": nil},
		"ES256": {"es256": nil, "es256 other key": errTokenSignature},
	}
	for route, j := range routes {
		for name, token := range tokens {
			expect, listed := want[route][name]
			if !listed {
				expect = errTokenAlgorithm
			}
			wantRefused(t, route+" route, "+name+" token", checkToken(j, token, OpSubscribe, "news"), expect)
		}
	}
}

// What each operation needs of the comet claim.
func TestJWTClaims(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	reader := hsToken(t, grant{Subscribe: []string{"inbox-42", "news"}})
	all := hsToken(t, grant{Subscribe: []string{"*"}, Publish: []string{"*"}})
	publisher := hsToken(t, grant{Publish: []string{"chat"}})
	manager := hsToken(t, grant{Manage: true})
	status := hsToken(t, grant{Status: true})
	nothing := sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(testEpoch.Add(time.Hour))})
	for _, c := range []struct {
		name, token, op, channels string
		want                      *hub.Error
	}{
		{"read a covered channel", reader, OpSubscribe, "inbox-42", nil},
		{"read every channel covered", reader, OpSubscribe, "inbox-42|news", nil},
		{"read an uncovered channel", reader, OpSubscribe, "inbox-43", errChannelUncovered},
		{"read covered and uncovered", reader, OpSubscribe, "inbox-42|inbox-43", errChannelUncovered},
		{"read uncovered last", reader, OpSubscribe, "news|inbox-42|inbox-43", errChannelUncovered},
		{"read an empty id", reader, OpSubscribe, "inbox-42|", errChannelUncovered},
		{"read with *", all, OpSubscribe, "anything|at-all", nil},
		{"publish with a subscribe claim", reader, OpPublish, "inbox-42", errChannelUncovered},
		{"publish covered", publisher, OpPublish, "chat", nil},
		{"publish uncovered", publisher, OpPublish, "news", errChannelUncovered},
		{"publish with *", all, OpPublish, "news", nil},
		{"read with a publish claim", publisher, OpSubscribe, "chat", errChannelUncovered},
		{"manage without the claim", all, OpManage, "", errOpUncovered},
		{"manage", manager, OpManage, "", nil},
		{"status without the claim", manager, OpStatus, "", errOpUncovered},
		{"status", status, OpStatus, "", nil},
		{"no comet claim", nothing, OpSubscribe, "news", errChannelUncovered},
	} {
		wantRefused(t, c.name, checkToken(j, c.token, c.op, c.channels), c.want)
	}
	// The message names the channel that is not covered.
	if err := checkToken(j, reader, OpSubscribe, "inbox-42|inbox-43"); err == nil || err.Error() != `Channel not covered by token: subscribe "inbox-43"` {
		t.Errorf("got %v", err)
	}
}

func TestJWTIssuerAudience(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret, Issuer: "https://auth.example.com", Audience: "comet"}, newTestClock())
	claims := func(iss string, aud ...string) tokenClaims {
		c := claimsAt(time.Hour, grant{Subscribe: []string{"news"}})
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
		{"wrong issuer", claims("https://evil.example.com", "comet"), errTokenIssuer},
		{"no issuer", claims("", "comet"), errTokenIssuer},
		{"wrong audience", claims("https://auth.example.com", "other"), errTokenAudience},
		{"no audience", claims("https://auth.example.com"), errTokenAudience},
	} {
		token := sign(t, jwt.SigningMethodHS256, []byte(testSecret), c.claims)
		wantRefused(t, c.name, checkToken(j, token, OpSubscribe, "news"), c.want)
	}
}

// signPayload signs payload, byte for byte, as the claims of an HS256
// token of testSecret: claims no JWT library would write, but which a
// holder of the key, or a library with other ideas of JSON, can sign.
func signPayload(t testing.TB, payload string) string {
	t.Helper()
	signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// strictClaims are the claims every case of strictClaimsCases needs to be
// taken on the route of TestJWTClaimsStrict: its issuer and audience, and
// an exp an hour after testEpoch (1799996400 is an hour before it).
const strictClaims = `"iss":"iss-A","aud":"aud-A","exp":1800003600`

// strictClaimsCases are signed claims sets and what a read of channel
// (news unless set) with them gets on a route with issuer iss-A and
// audience aud-A: want is the exact refusal, "" for none. Names are
// case-sensitive and matched after unescaping, a name given twice in any
// object is refused, and each claim read has its type.
var strictClaimsCases = []struct {
	name, payload, channel, want string
}{
	// Tokens as issuers write them.
	{"plain", `{` + strictClaims + `,"comet":{"subscribe":["news"]}}`, "", ""},
	{"every claim", `{"iss":"iss-A","sub":"user-42","aud":["other","aud-A"],"exp":1800003600,"nbf":1799996400,"iat":1799996400,"jti":"j1",` +
		`"ext":{"exp":1,"a":[{"a":1},{"a":2}],"b":{"a":null}},"comet":{"subscribe":["inbox-42","news"],"publish":["chat"],"manage":true,"status":false}}`, "", ""},
	{"exp with a fraction and an exponent", `{"iss":"iss-A","aud":"aud-A","exp":1.8000036005e9,"comet":{"subscribe":["news"]}}`, "", ""},
	{"null members of comet are none", `{` + strictClaims + `,"comet":{"subscribe":["news"],"publish":null,"manage":null}}`, "", ""},
	{"null comet is none", `{` + strictClaims + `,"comet":null}`, "", `Channel not covered by token: subscribe "news"`},
	{"escaped names are the names", `{"\u0069ss":"iss-A","aud":"aud-A","\u0065xp":1800003600,"comet":{"sub\u0073cribe":["news"]}}`, "", ""},
	{"exp at the limit", `{"iss":"iss-A","aud":"aud-A","exp":253402300799,"comet":{"subscribe":["news"]}}`, "", ""},

	// Another case is another claim, not the one the hub reads.
	{"EXP beside an exp past", `{"iss":"iss-A","aud":"aud-A","exp":1799996400,"EXP":1800003600,"comet":{"subscribe":["news"]}}`, "", "Token expired"},
	{"Exp without exp", `{"iss":"iss-A","aud":"aud-A","Exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Token has no exp claim"},
	{"cOmEt beside comet", `{` + strictClaims + `,"comet":{"subscribe":["news"]},"cOmEt":{"subscribe":["*"]}}`, "secret", `Channel not covered by token: subscribe "secret"`},
	{"Comet without comet", `{` + strictClaims + `,"Comet":{"subscribe":["*"]}}`, "", `Channel not covered by token: subscribe "news"`},
	{"ſubscribe (U+017F)", `{` + strictClaims + `,"comet":{"subscribe":["news"],"ſubscribe":["*"]}}`, "secret",
		`Malformed token: comet has no member "ſubscribe" (it has subscribe, publish, manage and status; names are case-sensitive)`},
	{"Subscribe", `{` + strictClaims + `,"comet":{"Subscribe":["*"]}}`, "",
		`Malformed token: comet has no member "Subscribe" (it has subscribe, publish, manage and status; names are case-sensitive)`},
	{"ISS beside a wrong iss", `{"iss":"evil","ISS":"iss-A","aud":"aud-A","exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Wrong token issuer"},
	{"AUD without aud", `{"iss":"iss-A","AUD":"aud-A","exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Wrong token audience: no aud claim"},

	// A name given twice.
	{"exp twice, past last", `{"iss":"iss-A","aud":"aud-A","exp":1800003600,"exp":1799996400,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "exp" given twice`},
	{"exp twice, future last", `{"iss":"iss-A","aud":"aud-A","exp":1799996400,"exp":1800003600,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "exp" given twice`},
	{"exp twice, one escaped", `{"iss":"iss-A","aud":"aud-A","exp":1799996400,"\u0065xp":1800003600,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "exp" given twice`},
	{"nbf twice", `{` + strictClaims + `,"nbf":1799996400,"nbf":1800003600,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "nbf" given twice`},
	{"comet twice", `{` + strictClaims + `,"comet":{"subscribe":["news"]},"comet":{"subscribe":["*"]}}`, "secret", `Malformed token: claim "comet" given twice`},
	{"iss twice", `{"iss":"evil","iss":"iss-A","aud":"aud-A","exp":1800003600,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "iss" given twice`},
	{"aud twice", `{"iss":"iss-A","aud":"other","aud":"aud-A","exp":1800003600,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "aud" given twice`},
	{"sub twice", `{` + strictClaims + `,"sub":"a","sub":"b","comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "sub" given twice`},
	{"an unknown claim twice", `{` + strictClaims + `,"x":1,"x":1,"comet":{"subscribe":["news"]}}`, "", `Malformed token: claim "x" given twice`},
	{"subscribe twice in comet", `{` + strictClaims + `,"comet":{"subscribe":["news"],"subscribe":["*"]}}`, "secret", `Malformed token: "subscribe" given twice in claim "comet"`},
	{"publish twice in comet", `{` + strictClaims + `,"comet":{"publish":[],"subscribe":["news"],"publish":["*"]}}`, "", `Malformed token: "publish" given twice in claim "comet"`},
	{"manage twice in comet", `{` + strictClaims + `,"comet":{"manage":false,"subscribe":["news"],"manage":true}}`, "", `Malformed token: "manage" given twice in claim "comet"`},
	{"twice deep in an unknown claim", `{` + strictClaims + `,"ext":{"a":{"b":1,"c":{},"b":2}},"comet":{"subscribe":["news"]}}`, "", `Malformed token: "b" given twice in claim "ext"`},
	{"twice in a list of an unknown claim", `{` + strictClaims + `,"ext":[[{"x":1}],{"x":1,"y":[],"x":2}],"comet":{"subscribe":["news"]}}`, "", `Malformed token: "x" given twice in claim "ext"`},

	// Each claim the hub reads has its type.
	{"exp a string", `{"iss":"iss-A","aud":"aud-A","exp":"1800003600","comet":{"subscribe":["news"]}}`, "", "Malformed token: exp is not a number"},
	{"exp null", `{"iss":"iss-A","aud":"aud-A","exp":null,"comet":{"subscribe":["news"]}}`, "", "Malformed token: exp is not a number"},
	{"nbf a string", `{` + strictClaims + `,"nbf":"1799996400","comet":{"subscribe":["news"]}}`, "", "Malformed token: nbf is not a number"},
	{"iat a string", `{` + strictClaims + `,"iat":"1799996400","comet":{"subscribe":["news"]}}`, "", "Malformed token: iat is not a number"},
	{"exp past the limit", `{"iss":"iss-A","aud":"aud-A","exp":253402300800,"comet":{"subscribe":["news"]}}`, "", "Malformed token: exp is out of range (0 to 253402300799)"},
	{"exp beyond a float64", `{"iss":"iss-A","aud":"aud-A","exp":1e400,"comet":{"subscribe":["news"]}}`, "", "Malformed token: exp is out of range (0 to 253402300799)"},
	{"exp negative", `{"iss":"iss-A","aud":"aud-A","exp":-1,"comet":{"subscribe":["news"]}}`, "", "Malformed token: exp is out of range (0 to 253402300799)"},
	// 1e300 seconds would wrap around to a time long past.
	{"nbf far ahead", `{` + strictClaims + `,"nbf":1e300,"comet":{"subscribe":["news"]}}`, "", "Malformed token: nbf is out of range (0 to 253402300799)"},
	{"iss a number", `{"iss":1,"aud":"aud-A","exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Malformed token: iss is not a string"},
	{"aud a list with a number", `{"iss":"iss-A","aud":["aud-A",1],"exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Malformed token: aud is not a string or a list of strings"},
	{"aud an object", `{"iss":"iss-A","aud":{"aud-A":true},"exp":1800003600,"comet":{"subscribe":["news"]}}`, "", "Malformed token: aud is not a string or a list of strings"},
	{"comet a list", `{` + strictClaims + `,"comet":["news"]}`, "", "Malformed token: comet is not an object"},
	{"subscribe a string", `{` + strictClaims + `,"comet":{"subscribe":"news"}}`, "", "Malformed token: comet.subscribe is not a list of strings"},
	{"subscribe with a null", `{` + strictClaims + `,"comet":{"subscribe":["news",null]}}`, "", "Malformed token: comet.subscribe is not a list of strings"},
	{"manage a string", `{` + strictClaims + `,"comet":{"subscribe":["news"],"manage":"true"}}`, "", "Malformed token: comet.manage is not true or false"},
	{"claims a list", `[]`, "", "Malformed token: the claims are not a JSON object"},
	{"claims null", `null`, "", "Malformed token: the claims are not a JSON object"},
	{"a name not UTF-8", "{" + strictClaims + ",\"x\xff\":1,\"comet\":{\"subscribe\":[\"news\"]}}", "", "Malformed token: the claims are not UTF-8"},
}

// Signed claims are read as RFC 7519 means them, not as encoding/json
// would decode them into a struct: exact names, no name twice, the
// registered claims of their types.
func TestJWTClaimsStrict(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret, Issuer: "iss-A", Audience: "aud-A"}, newTestClock())
	for _, c := range strictClaimsCases {
		channel := cmp.Or(c.channel, "news")
		err := checkToken(j, signPayload(t, c.payload), OpSubscribe, channel)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused with %q, want accepted", c.name, err.Error())
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted, want %q", c.name, c.want)
		case c.want != "" && (err.Error() != c.want || err.Code != hub.CodeBadRequest):
			t.Errorf("%s: refused with %d %q, want -1 %q", c.name, err.Code, err.Error(), c.want)
		}
	}
}

// Claims the decoder refuses are refused only once the signature holds:
// a client without the key gets "Bad token signature" for them, and
// cannot make the hub read what it sent.
func TestJWTClaimsAfterSignature(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	token := signPayload(t, `{"exp":1800003600,"exp":1800003600}`)
	forged := token[:strings.LastIndex(token, ".")+1] + strings.Repeat("A", 43)
	wantRefused(t, "a forged token with exp twice", checkToken(j, forged, OpSubscribe, "news"), errTokenSignature)
	wantRefused(t, "the signed token with exp twice", checkToken(j, token, OpSubscribe, "news"), errTokenMalformed)
}

// Where a token may come from, and what is refused before it is decoded.
func TestJWTRequestToken(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	token := hsToken(t, grant{Subscribe: []string{"news"}})
	other := hsToken(t, grant{Subscribe: []string{"news", "more"}})
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
		{"both, different", "token=" + token, []string{"Bearer " + other}, errTokenTwice},
		{"two in the query", "token=" + token + "&token=" + token, nil, errTokenTwice},
		{"two bearers", "", []string{"Bearer " + token, "Bearer " + other}, errTokenTwice},
		{"none", "since=0", nil, errTokenMissing},
		{"empty", "token=", nil, errTokenMissing},
		{"basic auth is not a token", "", []string{"Basic dXNlcjpwYXNz"}, errTokenMissing},
		{"basic auth beside a token", "token=" + token, []string{"Basic dXNlcjpwYXNz"}, nil},
		{"bad escape", "token=%zz", nil, errTokenMalformed},
		{"too long", "token=" + strings.Repeat("a", maxTokenLength+1), nil, errTokenTooLong},
		{"too long, escaped", "token=" + strings.Repeat("%61", maxTokenLength+1), nil, errTokenTooLong},
		{"too long bearer", "", []string{"Bearer " + strings.Repeat("a", maxTokenLength+1)}, errTokenTooLong},
		{"garbage", "token=not.a.token", nil, errTokenMalformed},
	} {
		r := httptest.NewRequest(http.MethodGet, "/channels/news.json?"+c.query, nil)
		for _, v := range c.header {
			r.Header.Add("Authorization", v)
		}
		_, apiErr := j.check(r, OpSubscribe, "news")
		wantRefused(t, c.name, apiErr, c.want)
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

// A token of maxTokenLength bytes is verified; one byte more is refused
// before anything is decoded.
func TestJWTMaxTokenLength(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	atLimit := padToken(t, maxTokenLength)
	wantRefused(t, "a token at the limit", checkToken(j, atLimit, OpSubscribe, "news"), nil)
	r := httptest.NewRequest(http.MethodPost, "/channels/news.json", nil)
	r.Header.Set("Authorization", "Bearer "+atLimit)
	_, apiErr := j.check(r, OpSubscribe, "news")
	wantRefused(t, "a bearer at the limit", apiErr, nil)
	over := padToken(t, maxTokenLength+1)
	wantRefused(t, "a token one byte over", checkToken(j, over, OpSubscribe, "news"), errTokenTooLong)
}

// The cache serves a token until it expires, keeps the tokens in use and
// stays within its bounds however many tokens verify.
func TestJWTCache(t *testing.T) {
	now := testEpoch
	c := newTokenCache(100, 1<<20)
	g := &grant{Subscribe: []string{"news"}}
	c.put("kept", g, now.Add(time.Hour), now)
	for i := range 1000 {
		c.put(fmt.Sprint("token ", i), g, now.Add(time.Hour), now)
		// A token in use is found again and again: it stays.
		if c.get("kept", now) != g {
			t.Fatalf("the token in use was dropped after %d others", i)
		}
		if n, _ := c.size(); n > 100 {
			t.Fatalf("%d tokens cached, want at most 100", n)
		}
	}
	if c.get("token 0", now) != nil {
		t.Error("the first of 1000 tokens is still cached in a cache of 100")
	}
	if c.get("token 999", now) != g {
		t.Error("the latest token is not cached")
	}
	if c.get("kept", now.Add(time.Hour)) != nil {
		t.Error("a token is served at its expiry")
	}

	// The byte bound: large tokens push each other out.
	c = newTokenCache(1000, 64<<10)
	big := strings.Repeat("t", 8<<10)
	for i := range 100 {
		c.put(fmt.Sprint(i, big), g, now.Add(time.Hour), now)
		if _, bytes := c.size(); bytes > 64<<10 {
			t.Fatalf("%d bytes cached, want at most %d", bytes, 64<<10)
		}
	}
	// An expired token is not cached at all.
	c.put("late", g, now, now)
	if c.get("late", now.Add(-time.Second)) != nil {
		t.Error("an expired token was cached")
	}
}

// A cached token is a copy: the cache does not pin the query string (and
// the request) it came in, which may be much larger than the token.
func TestJWTCacheKeepsOnlyTheToken(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	token := hsToken(t, grant{Subscribe: []string{"news"}})
	r := httptest.NewRequest(http.MethodGet, "/channels/news.json?since=0&token="+token+"&cb=_JSONP_x", nil)
	if _, err := j.check(r, OpSubscribe, "news"); err != nil {
		t.Fatal(err)
	}
	if n, _ := j.cache.size(); n != 1 {
		t.Fatalf("%d cached, want 1", n)
	}
	query := r.URL.RawQuery
	start := uintptr(unsafe.Pointer(unsafe.StringData(query)))
	for k := range j.cache.cur {
		if k != token {
			t.Fatalf("cache key %q, want the token", k)
		}
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k))); p >= start && p < start+uintptr(len(query)) {
			t.Fatal("the cache key is a slice of the request's query")
		}
	}
}

// deepCall calls f under n frames of some 280 bytes each, as a request is
// served under Caddy's and net/http's frames.
//
//go:noinline
func deepCall(n int, f func()) byte {
	var pad [256]byte
	pad[n%256] = byte(n)
	if n == 0 {
		f()
		return pad[3]
	}
	return deepCall(n-1, f) + pad[n%256]
}

// A read whose token is verified (not found in the cache) is held with no
// more stack than one that needs no token: verifying takes some 4 KiB of
// stack, which under the ~5 KiB of frames above a handler would double a
// held read's goroutine stack, for as long as the read is held.
func TestJWTVerifyKeepsTheStackSmall(t *testing.T) {
	rsaKey, _ := testKeys(t)
	j := provisionJWT(t, &JWT{PublicKey: publicPEM(t, &rsaKey.PublicKey)}, nil)
	j.cache = newTokenCache(0, 0) // every token verified
	token := sign(t, jwt.SigningMethodRS256, rsaKey, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Comet:            grant{Subscribe: []string{"news"}},
	})
	const goroutines, depth = 500, 18 // 18 frames: some 5 KiB
	stackPerHeldRead := func(verify bool) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var held, done sync.WaitGroup
		release := make(chan struct{})
		for range goroutines {
			held.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				deepCall(depth, func() {
					if verify {
						if _, err := j.verify(token); err != nil {
							panic(err)
						}
					}
					deepCall(2, func() { held.Done(); <-release })
				})
			}()
		}
		held.Wait()
		runtime.GC() // shrinks what it can
		runtime.ReadMemStats(&after)
		close(release)
		done.Wait()
		return (after.StackInuse - before.StackInuse) / goroutines
	}
	without, with := stackPerHeldRead(false), stackPerHeldRead(true)
	t.Logf("stack per held read: %d bytes without a token, %d verifying one", without, with)
	if with > without+without/4 {
		t.Fatalf("a held read takes %d bytes of stack after verifying its token, %d without", with, without)
	}
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

// FuzzJWTCheck feeds hostile requests to the token check of an HS256 route:
// whatever the query and the Authorization header hold, the check does not
// panic, and it refuses every token but the valid ones it was seeded with
// (no fuzzer forges an HMAC), with an error of the API's shape that never
// holds the token.
func FuzzJWTCheck(f *testing.F) {
	j := provisionJWT(f, &JWT{Key: testSecret, Issuer: "iss", Audience: "aud", Leeway: caddy.Duration(time.Second)}, newTestClock())
	valid := func(g grant) string {
		c := claimsAt(time.Hour, g)
		c.Issuer, c.Audience = "iss", jwt.ClaimStrings{"aud"}
		return sign(f, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	good := valid(grant{Subscribe: []string{"news"}, Publish: []string{"*"}, Manage: true})
	parts := strings.Split(good, ".")
	rsaKey, _ := testKeys(f)
	for _, seed := range []string{
		good,
		valid(grant{Subscribe: []string{"other"}}),
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "A",
		parts[0] + ".." + parts[2],
		"..",
		"",
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsAt(time.Hour, grant{Subscribe: []string{"*"}})),
		sign(f, jwt.SigningMethodRS256, rsaKey, claimsAt(time.Hour, grant{Subscribe: []string{"*"}})),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon","comet":{"subscribe":"news"}}`)) + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":["HS256"]}`)) + "." + parts[1] + "." + parts[2],
		strings.Repeat("A", maxTokenLength) + ".." + "x",
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
		for _, op := range allOps {
			_, apiErr := j.check(r, op, channels)
			if apiErr == nil {
				token, _ := requestToken(r)
				if !validTokens[token] {
					t.Fatalf("%s accepted with query %q, authorization %q", op, query, authorization)
				}
				continue
			}
			if apiErr.Code != hub.CodeBadRequest || !strings.Contains(apiErr.Message, "oken") {
				t.Fatalf("refused with %d %q", apiErr.Code, apiErr.Error())
			}
			if token, _ := requestToken(r); len(token) > 8 && strings.Contains(apiErr.Error(), token) {
				t.Fatalf("the error %q holds the token", apiErr.Error())
			}
		}
	})
}

// FuzzJWTClaims feeds the claims decoder any payload, as if signed. It
// does not panic, and it refuses, with a claimsError (the detail of
// "Malformed token"), exactly the payloads referenceClaims refuses: not
// UTF-8, not one JSON object, a name given twice in any object, a claim
// the hub reads not of its type. What it accepts, it reads as
// referenceClaims does, with names matched exactly.
func FuzzJWTClaims(f *testing.F) {
	for _, c := range strictClaimsCases {
		f.Add([]byte(c.payload))
	}
	f.Add([]byte(`{"exp":1,"x":[[[{"a":[{"a":1}],"b":{}}]]],"y":{"a":{"a":{"a":1,"b":2}}},"comet":{}}`))
	f.Add([]byte(`{"x":[{"a":1},{"a":1,"b":{"a":1},"a":2}]}`))
	f.Add([]byte(` {"exp":0} `))
	f.Add([]byte(`{"exp":0}{}`))
	f.Add([]byte(`{"aud":[],"comet":{"subscribe":[],"publish":["\ud800","\u00e9"]}}`))
	f.Add([]byte(`{"\ud800":1,"\udc00":2}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var got tokenClaims
		err := got.UnmarshalJSON(payload)
		want, refusal := referenceClaims(payload)
		if err != nil {
			var ce *claimsError
			if !errors.As(err, &ce) {
				t.Fatalf("%q refused with %T %v, want a claimsError", payload, err, err)
			}
			if refusal == "" {
				t.Fatalf("%q refused (%v); the reference takes it", payload, err)
			}
			return
		}
		if refusal != "" {
			t.Fatalf("%q accepted; the reference refuses it: %s", payload, refusal)
		}
		if !sameClaims(&got, &want) {
			t.Fatalf("%q read as %+v, the reference reads %+v", payload, got, want)
		}
	})
}

// referenceClaims reads a claims set as the hub means to, by other means
// than its decoder: json.Valid for the syntax, a recursive walk for a name
// given twice, and a decode into maps, whose keys match exactly. It
// returns the claims, or why it refuses them.
func referenceClaims(payload []byte) (c tokenClaims, refusal string) {
	if !utf8.Valid(payload) {
		return c, "not UTF-8"
	}
	if !json.Valid(payload) {
		return c, "not JSON"
	}
	if name, ok := repeatedName(json.NewDecoder(bytes.NewReader(payload))); ok {
		return c, fmt.Sprintf("%q given twice", name)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return c, "not an object"
	}
	strs := func(v any) ([]string, bool) {
		list, ok := v.([]any)
		var out []string
		for _, e := range list {
			s, isString := e.(string)
			if !isString {
				return nil, false
			}
			out = append(out, s)
		}
		return out, ok
	}
	for name, v := range m {
		ok := true
		switch name {
		case "exp", "nbf", "iat":
			var d *jwt.NumericDate
			d, ok = referenceDate(v)
			switch name {
			case "exp":
				c.ExpiresAt = d
			case "nbf":
				c.NotBefore = d
			default:
				c.IssuedAt = d
			}
		case "iss", "sub", "jti":
			var s string
			s, ok = v.(string)
			switch name {
			case "iss":
				c.Issuer = s
			case "sub":
				c.Subject = s
			default:
				c.ID = s
			}
		case "aud":
			if s, isString := v.(string); isString {
				c.Audience = jwt.ClaimStrings{s}
			} else {
				c.Audience, ok = strs(v)
			}
		case "comet":
			if v == nil {
				break
			}
			var g map[string]any
			if g, ok = v.(map[string]any); !ok {
				break
			}
			for member, v := range g {
				switch member {
				case "subscribe":
					if v != nil {
						c.Comet.Subscribe, ok = strs(v)
					}
				case "publish":
					if v != nil {
						c.Comet.Publish, ok = strs(v)
					}
				case "manage":
					if v != nil {
						c.Comet.Manage, ok = v.(bool)
					}
				case "status":
					if v != nil {
						c.Comet.Status, ok = v.(bool)
					}
				default:
					ok = false
				}
				if !ok {
					return c, "comet member " + member + " wrong"
				}
			}
		}
		if !ok {
			return c, "claim " + name + " wrong"
		}
	}
	return c, ""
}

// referenceDate reads a NumericDate of up to the year 9999 as the JWT
// library does.
func referenceDate(v any) (*jwt.NumericDate, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	if f, err := n.Float64(); err != nil || f < 0 || f > 253402300799 {
		return nil, false
	}
	d := new(jwt.NumericDate)
	if err := d.UnmarshalJSON([]byte(n)); err != nil {
		return nil, false
	}
	return d, true
}

// repeatedName returns a name given twice in an object of the JSON value
// dec reads, if there is one.
func repeatedName(dec *json.Decoder) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch tok {
	case json.Delim('{'):
		names := make(map[string]bool)
		for dec.More() {
			tok, _ := dec.Token()
			name, _ := tok.(string)
			if names[name] {
				return name, true
			}
			names[name] = true
			if name, ok := repeatedName(dec); ok {
				return name, true
			}
		}
		_, _ = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if name, ok := repeatedName(dec); ok {
				return name, true
			}
		}
		_, _ = dec.Token()
	}
	return "", false
}

// sameClaims reports whether a and b hold the same claims.
func sameClaims(a, b *tokenClaims) bool {
	sameDate := func(x, y *jwt.NumericDate) bool {
		return x == nil && y == nil || x != nil && y != nil && x.Equal(y.Time)
	}
	return a.Issuer == b.Issuer && a.Subject == b.Subject && a.ID == b.ID &&
		slices.Equal(a.Audience, b.Audience) &&
		sameDate(a.ExpiresAt, b.ExpiresAt) && sameDate(a.NotBefore, b.NotBefore) && sameDate(a.IssuedAt, b.IssuedAt) &&
		slices.Equal(a.Comet.Subscribe, b.Comet.Subscribe) && slices.Equal(a.Comet.Publish, b.Comet.Publish) &&
		a.Comet.Manage == b.Comet.Manage && a.Comet.Status == b.Comet.Status
}

// benchmarkCheck measures the token check of a read of two channels on a
// route that takes tokens signed with method.
func benchmarkCheck(b *testing.B, j *JWT, method jwt.SigningMethod, key any, cached bool) {
	provisionJWT(b, j, nil)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Comet:            grant{Subscribe: []string{"news", "inbox-42"}},
	}
	token := sign(b, method, key, claims)
	r := httptest.NewRequest(http.MethodGet, "/channels/news%7Cinbox-42.jsonp?since=128916015846785&cb=_JSONP_1&t=1700000000000.1&token="+token, nil)
	if !cached {
		j.cache = newTokenCache(0, 0) // holds nothing
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := j.check(r, OpSubscribe, "news|inbox-42"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJWTCheck is the cost of the token check per read: verified
// (HS256, RS256, ES256) and from the cache.
func BenchmarkJWTCheck(b *testing.B) {
	rsaKey, ecKey := testKeys(b)
	b.Run("HS256/cached", func(b *testing.B) {
		benchmarkCheck(b, &JWT{Key: testSecret}, jwt.SigningMethodHS256, []byte(testSecret), true)
	})
	b.Run("HS256/verified", func(b *testing.B) {
		benchmarkCheck(b, &JWT{Key: testSecret}, jwt.SigningMethodHS256, []byte(testSecret), false)
	})
	b.Run("RS256/cached", func(b *testing.B) {
		benchmarkCheck(b, &JWT{PublicKey: publicPEM(b, &rsaKey.PublicKey)}, jwt.SigningMethodRS256, rsaKey, true)
	})
	b.Run("RS256/verified", func(b *testing.B) {
		benchmarkCheck(b, &JWT{PublicKey: publicPEM(b, &rsaKey.PublicKey)}, jwt.SigningMethodRS256, rsaKey, false)
	})
	b.Run("ES256/verified", func(b *testing.B) {
		benchmarkCheck(b, &JWT{PublicKey: publicPEM(b, &ecKey.PublicKey)}, jwt.SigningMethodES256, ecKey, false)
	})
}

// An event stream is checked as a read is, by the handler's own path: every
// channel covered by the token, and nothing asked on a route whose reads
// need no token. A refused stream gets the read's 403 before it starts.
func TestStreamTokenCheck(t *testing.T) {
	token := hsToken(t, grant{Subscribe: []string{"inbox-42"}})
	for _, tc := range []struct {
		name, target string
		jwt          *JWT
		refusal      *hub.Error
	}{
		{"covered", "/channels/inbox-42.sse?token=" + token, &JWT{Key: testSecret}, nil},
		{"not covered", "/channels/inbox-42%7Cinbox-43.sse?token=" + token, &JWT{Key: testSecret}, errChannelUncovered},
		{"no token", "/channels/inbox-42.sse", &JWT{Key: testSecret}, errTokenMissing},
		{"reads need no token", "/channels/inbox-43.sse", &JWT{Key: testSecret, Require: []string{OpPublish}}, nil},
		{"no jwt block", "/channels/inbox-43.sse", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHandler(t, hub.Config{})
			for _, ch := range []string{"inbox-42", "inbox-43"} {
				if err := h.hub.RegisterChannel(t.Context(), ch, false, 0); err != nil {
					t.Fatal(err)
				}
			}
			if tc.jwt != nil {
				h.JWT = provisionJWT(t, tc.jwt, newTestClock())
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

// The jwt block adapts to the handler's jwt field, placeholders kept for
// provisioning to replace.
func TestJWTCaddyfile(t *testing.T) {
	got := adaptedHandler(t, siteWith(
		"allow subscribe publish",
		"jwt {",
		"	key {env.COMET_JWT_KEY}",
		"	require subscribe",
		"	issuer https://auth.example.com",
		"	audience comet",
		"	leeway 30s",
		"}",
	))
	want := `{"allow":["subscribe","publish"],"handler":"comet","jwt":{"audience":"comet","issuer":"https://auth.example.com",` +
		`"key":"{env.COMET_JWT_KEY}","leeway":30000000000,"require":["subscribe"]}}`
	if canonicalJSON(t, got, "") != canonicalJSON(t, []byte(want), "") {
		t.Errorf("adapted to\n%s\nwant\n%s", got, want)
	}
	got = adaptedHandler(t, siteWith("jwt {", "	public_key /etc/caddy/jwt.pem", "	leeway 5", "}"))
	if want := `{"handler":"comet","jwt":{"leeway":5000000000,"public_key":"/etc/caddy/jwt.pem"}}`; canonicalJSON(t, got, "") != canonicalJSON(t, []byte(want), "") {
		t.Errorf("adapted to\n%s\nwant\n%s", got, want)
	}

	for _, tt := range []struct {
		name, input string
		line        int
		want        string
	}{
		{"unknown option", "comet {\n\tjwt {\n\t\tkey k\n\t\tsecret s\n\t}\n}", 4, `jwt: unknown option "secret"`},
		{"no key", "comet {\n\tjwt {\n\t\tleeway 1s\n\t}\n}", 4, "jwt: set key (HS256) or public_key"},
		{"both keys", "comet {\n\tjwt {\n\t\tkey k\n\t\tpublic_key p\n\t}\n}", 5, "not both"},
		{"twice", "comet {\n\tjwt {\n\t\tkey k\n\t}\n\tjwt {\n\t\tkey k\n\t}\n}", 5, "jwt: given more than once"},
		{"argument", "comet {\n\tjwt k {\n\t}\n}", 2, "wrong argument count"},
		{"key without value", "comet {\n\tjwt {\n\t\tkey\n\t}\n}", 3, "wrong argument count"},
		{"key with two values", "comet {\n\tjwt {\n\t\tkey a b\n\t}\n}", 3, "wrong argument count"},
		{"unknown op", "comet {\n\tjwt {\n\t\tkey k\n\t\trequire read\n\t}\n}", 4, `jwt: require: unknown operation "read"`},
		{"require nothing", "comet {\n\tjwt {\n\t\tkey k\n\t\trequire\n\t}\n}", 4, "wrong argument count"},
		{"bad leeway", "comet {\n\tjwt {\n\t\tkey k\n\t\tleeway soon\n\t}\n}", 4, `leeway: invalid duration "soon"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
			if at := "Testfile:" + strconv.Itoa(tt.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name line %s", err, at)
			}
		})
	}
}

// A configuration loads only with a key that HS256 can use, once its
// placeholder is replaced; the error says why without showing the key.
func TestJWTConfigLoads(t *testing.T) {
	site := func(key string) string {
		return strings.Replace(siteWith("jwt {", "	key "+key, "}"), ":4080", ":0", 1)
	}
	t.Setenv("COMET_TEST_JWT_KEY", testSecret)
	if err := validateCaddyfile(t, site("{env.COMET_TEST_JWT_KEY}")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COMET_TEST_JWT_KEY", "too short a secret")
	err := validateCaddyfile(t, site("{env.COMET_TEST_JWT_KEY}"))
	if err == nil || !strings.Contains(err.Error(), "HS256 wants at least 32") || strings.Contains(err.Error(), "too short a secret") {
		t.Fatalf("got %v, want the key length refused without the key", err)
	}
	err = validateCaddyfile(t, strings.Replace(siteWith("allow subscribe", "jwt {", "	key "+testSecret, "	require publish", "}"), ":4080", ":0", 1))
	if err == nil || !strings.Contains(err.Error(), "publish is not allowed on this route") {
		t.Fatalf("got %v, want require refused for an operation the route does not allow", err)
	}
}

// A panic while verifying, on a worker goroutine where Caddy cannot
// recover it, refuses the token instead of ending the process.
func TestJWTVerifyPanicRefuses(t *testing.T) {
	j := &JWT{logger: zap.NewNop(), cache: newTokenCache(1, 1), now: time.Now} // no parser: verifying panics
	g, err := verifyOffStack(j, "a.b.c", time.Now())
	if g != nil || !errors.Is(err, errTokenMalformed) {
		t.Fatalf("got %v, %v; want the token refused as malformed", g, err)
	}
	// The workers are still there.
	j = provisionJWT(t, &JWT{Key: testSecret}, newTestClock())
	wantRefused(t, "after a panic", checkToken(j, hsToken(t, grant{Subscribe: []string{"news"}}), OpSubscribe, "news"), nil)
}
