package comet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/token/tokentest"
)

// testSecret is an HS256 key of the shortest length taken.
const testSecret = "0123456789abcdef0123456789abcdef"

// provisionJWT provisions j for a route that allows every operation (or
// allowed), on clock.
func provisionJWT(t testing.TB, j *JWT, allowed ...string) *JWT {
	t.Helper()
	if len(allowed) == 0 {
		allowed = allOps
	}
	if err := j.provision(zap.NewNop(), allowed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.close)
	return j
}

// checkToken runs the route's check for op on channels with raw as the
// token query parameter.
func checkToken(j *JWT, raw, op, channels string) error {
	r := httptest.NewRequest(http.MethodGet, "/channels/x.jsonp?since=0&token="+url.QueryEscape(raw), nil)
	_, err := j.verifier.Check(r, op, channels)
	return err
}

func pemFile(t *testing.T, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJWTConfig(t *testing.T) {
	rsaKey, ecKey := tokentest.Keys(t)
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
	t.Setenv("COMET_TEST_JWT_PEM", tokentest.PublicPEM(t, &ecKey.PublicKey))

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
		{name: "es256 inline", jwt: JWT{PublicKey: tokentest.PublicPEM(t, &ecKey.PublicKey)}, wantAlg: "ES256"},
		{name: "es256 from env", jwt: JWT{PublicKey: "{env.COMET_TEST_JWT_PEM}"}, wantAlg: "ES256"},
		{name: "rsa 1024", jwt: JWT{PublicKey: tokentest.PublicPEM(t, &smallRSA.PublicKey)}, wantErr: "an RSA key of 1024 bits, want at least 2048"},
		{name: "p-384", jwt: JWT{PublicKey: tokentest.PublicPEM(t, &p384.PublicKey)}, wantErr: "ES256 wants P-256"},
		{name: "private key", jwt: JWT{PublicKey: pemFile(t, "EC PRIVATE KEY", ecPrivDER)}, wantErr: "a private key does not belong on the server"},
		{name: "missing file", jwt: JWT{PublicKey: filepath.Join(t.TempDir(), "none.pem")}, wantErr: "reading the PEM file"},
		{name: "not pem", jwt: JWT{PublicKey: "-----BEGIN nonsense"}, wantErr: "no PEM block found"},
		{name: "no key", jwt: JWT{}, wantErr: "no key"},
		{name: "both keys", jwt: JWT{Key: testSecret, PublicKey: tokentest.PublicPEM(t, &ecKey.PublicKey)}, wantErr: "not both"},
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
			t.Cleanup(j.close)
			if alg := j.verifier.Algorithm(); alg != c.wantAlg {
				t.Fatalf("algorithm %s, want %s", alg, c.wantAlg)
			}
		})
	}
}

// require defaults to what the route allows, and authorize asks for a
// token only for those operations.
func TestJWTRequireDefaultsToAllowed(t *testing.T) {
	j := provisionJWT(t, &JWT{Key: testSecret}, OpSubscribe, OpPublish)
	if !j.required[OpSubscribe] || !j.required[OpPublish] || j.required[OpManage] || j.required[OpStatus] {
		t.Fatalf("required %v, want subscribe and publish", j.required)
	}
	j = provisionJWT(t, &JWT{Key: testSecret, Require: []string{OpPublish}})
	if j.required[OpSubscribe] || !j.required[OpPublish] {
		t.Fatalf("required %v, want publish only", j.required)
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
