package comet

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/simple-comet/caddy-comet/token"
	"github.com/simple-comet/caddy-comet/token/tokentest"
)

// runTokenCommand runs `caddy comet-token args...` as Caddy's command line
// would, and returns what it printed.
func runTokenCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	spec, ok := caddycmd.Commands()["comet-token"]
	if !ok {
		t.Fatal("the comet-token command is not registered")
	}
	cmd := &cobra.Command{Use: spec.Name, SilenceUsage: true, SilenceErrors: true}
	spec.CobraFunc(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return strings.TrimSpace(out.String()), err
}

// The tokens comet-token mints are taken by a route with the same key, and
// grant what the flags say, for the ttl they say.
func TestTokenCommand(t *testing.T) {
	rsaKey, ecKey := tokentest.Keys(t)
	rsaDER, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(keyFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tokenKeyEnv, testSecret)
	hs := &JWT{Key: testSecret, Issuer: "https://auth.example.com", Audience: "comet"}
	provisionJWT(t, hs)
	rs := provisionJWT(t, &JWT{PublicKey: tokentest.PublicPEM(t, &rsaKey.PublicKey)})
	es := provisionJWT(t, &JWT{PublicKey: tokentest.PublicPEM(t, &ecKey.PublicKey)})

	for _, c := range []struct {
		name  string
		route *JWT
		args  []string
	}{
		{"key from the environment", hs, nil},
		{"--key", hs, []string{"--key", testSecret}},
		{"--key-file", hs, []string{"--key-file", keyFile}},
		{"rs256", rs, []string{"--private-key", pemFile(t, "PRIVATE KEY", rsaDER)}},
		{"es256", es, []string{"--private-key", pemFile(t, "EC PRIVATE KEY", ecDER)}},
	} {
		args := append(c.args, "--subscribe", "inbox-42, news", "--publish", "chat", "--manage",
			"--ttl", "90m", "--issuer", "https://auth.example.com", "--audience", "comet", "--subject", "user-42")
		minted, err := runTokenCommand(t, args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, ok := range []struct{ op, channels string }{
			{OpSubscribe, "inbox-42|news"}, {OpPublish, "chat"}, {OpManage, ""},
		} {
			if apiErr := checkToken(c.route, minted, ok.op, ok.channels); apiErr != nil {
				t.Errorf("%s: %s %s refused: %v", c.name, ok.op, ok.channels, apiErr)
			}
		}
		for _, refused := range []struct{ op, channels string }{
			{OpSubscribe, "inbox-43"}, {OpPublish, "news"}, {OpStatus, ""},
		} {
			if checkToken(c.route, minted, refused.op, refused.channels) == nil {
				t.Errorf("%s: %s %s accepted", c.name, refused.op, refused.channels)
			}
		}
		// Valid for the ttl, not a minute longer.
		late := &JWT{Key: c.route.Key, PublicKey: c.route.PublicKey}
		late.now = func() time.Time { return time.Now().Add(91 * time.Minute) }
		if checkToken(provisionJWT(t, late), minted, OpSubscribe, "news") == nil {
			t.Errorf("%s: the token is taken after its ttl", c.name)
		}
		late = &JWT{Key: c.route.Key, PublicKey: c.route.PublicKey}
		late.now = func() time.Time { return time.Now().Add(89 * time.Minute) }
		if apiErr := checkToken(provisionJWT(t, late), minted, OpSubscribe, "news"); apiErr != nil {
			t.Errorf("%s: the token is refused within its ttl: %v", c.name, apiErr)
		}
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--subscribe", "news", "--key", "short"}, "at least 32"},
		{[]string{"--subscribe", "news", "--key", testSecret, "--key-file", keyFile}, "give one of"},
		{[]string{"--key", testSecret}, "would allow nothing"},
		{[]string{"--subscribe", "news", "--ttl", "0s"}, "--ttl must be more than 0"},
		{[]string{"--subscribe", "news", "--private-key", keyFile}, "no PEM block"},
		{[]string{"--subscribe", strings.Repeat("channel,", token.MaxLength/8)}, "name fewer channels"},
		{[]string{"stray"}, "unknown command"},
	} {
		out, err := runTokenCommand(t, bad.args...)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: got %v (printed %q), want an error with %q", bad.args, err, out, bad.want)
		}
	}
	t.Setenv(tokenKeyEnv, "")
	if _, err := runTokenCommand(t, "--subscribe", "news"); err == nil || !strings.Contains(err.Error(), tokenKeyEnv) {
		t.Errorf("no key: got %v, want an error naming %s", err, tokenKeyEnv)
	}
}
