package comet

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/simple-comet/caddy-comet/token"
)

// tokenKeyEnv is the environment variable comet-token reads the HS256
// secret from when no key flag is given: the one the Caddyfiles of
// docs/security.md read with {env.COMET_JWT_KEY}.
const tokenKeyEnv = "COMET_JWT_KEY"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "comet-token",
		Usage: "[--key <secret> | --key-file <path> | --private-key <pem-file>] [--subscribe <ids>] [--publish <ids>] [--manage] [--status] [--ttl <duration>] [--issuer <iss>] [--audience <aud>] [--subject <sub>]",
		Short: "Mints a signed token for a comet route's jwt block",
		Long: `
Mints a JSON Web Token that a comet route with a jwt block accepts, and
prints it. It is meant for testing and for scripts; a site's back end
mints its users' tokens itself (docs/security.md shows how, in a few languages).

The key is the route's: an HS256 secret from --key, from the first line of
--key-file, or from the COMET_JWT_KEY environment variable; or, for a route
with a public_key, the matching private key as a PEM file (--private-key),
which signs RS256 for an RSA key and ES256 for a P-256 key.

--subscribe and --publish take channel ids separated by commas, or * for
every channel; --manage and --status allow those operations. The token
expires after --ttl (default 1h).

Example:

	$ export COMET_JWT_KEY=$(head -c 32 /dev/urandom | base64)
	$ caddy comet-token --subscribe news,inbox-42 --ttl 12h
`,
		CobraFunc: func(cmd *cobra.Command) {
			f := cmd.Flags()
			f.String("key", "", "HS256 secret (default: $"+tokenKeyEnv+")")
			f.String("key-file", "", "file whose first line is the HS256 secret")
			f.String("private-key", "", "PEM private key file, to sign RS256 (RSA) or ES256 (P-256)")
			f.String("subscribe", "", "channels the token may read, comma-separated (* for all)")
			f.String("publish", "", "channels the token may publish to, comma-separated (* for all)")
			f.Bool("manage", false, "allow registering and deleting channels, registering clients")
			f.Bool("status", false, "allow the status call")
			f.Duration("ttl", time.Hour, "how long the token is valid")
			f.String("issuer", "", "iss claim (for a route with issuer)")
			f.String("audience", "", "aud claim (for a route with audience)")
			f.String("subject", "", "sub claim: who the token is for (not checked by the route)")
			cmd.Args = cobra.NoArgs
			cmd.RunE = func(cmd *cobra.Command, _ []string) error {
				signed, err := mintTokenFromFlags(cmd)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), signed)
				return err
			}
		},
	})
}

// mintTokenFromFlags mints the token the comet-token command's flags ask
// for.
func mintTokenFromFlags(cmd *cobra.Command) (string, error) {
	f := cmd.Flags()
	str := func(name string) string { v, _ := f.GetString(name); return v }
	flag := func(name string) bool { v, _ := f.GetBool(name); return v }
	ttl, _ := f.GetDuration("ttl")
	if ttl <= 0 {
		return "", fmt.Errorf("--ttl must be more than 0, got %v", ttl)
	}
	key, err := tokenSigningKey(str("key"), str("key-file"), str("private-key"))
	if err != nil {
		return "", err
	}
	claims := token.Claims{
		Issuer:    str("issuer"),
		Subject:   str("subject"),
		Audience:  str("audience"),
		IssuedAt:  time.Now(),
		ExpiresAt: time.Now().Add(ttl),
		Grant: token.Grant{
			Subscribe: splitIDs(str("subscribe")),
			Publish:   splitIDs(str("publish")),
			Manage:    flag("manage"),
			Status:    flag("status"),
		},
	}
	g := claims.Grant
	if len(g.Subscribe)+len(g.Publish) == 0 && !g.Manage && !g.Status {
		return "", errors.New("the token would allow nothing: give --subscribe, --publish, --manage or --status")
	}
	signed, err := token.Sign(claims, key)
	if err != nil {
		return "", err
	}
	if len(signed) > token.MaxLength {
		return "", fmt.Errorf("the token is %d bytes, over the %d a route takes: name fewer channels", len(signed), token.MaxLength)
	}
	return signed, nil
}

// tokenSigningKey returns the signing key of the comet-token command, from
// one of its key flags or the environment: an HS256 secret, or a private
// key (see token.Sign).
func tokenSigningKey(key, keyFile, privateKey string) (any, error) {
	given := 0
	for _, v := range []string{key, keyFile, privateKey} {
		if v != "" {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("give one of --key, --key-file and --private-key")
	}
	switch {
	case privateKey != "":
		pemBytes, err := os.ReadFile(privateKey)
		if err != nil {
			return nil, fmt.Errorf("reading --private-key: %w", err)
		}
		priv, err := token.ParsePrivateKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("--private-key: %w", err)
		}
		return priv, nil
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("reading --key-file: %w", err)
		}
		// The first line, so that a file written by echo works.
		key, _, _ = strings.Cut(string(b), "\n")
		key = strings.TrimSuffix(key, "\r")
	case key == "":
		key = os.Getenv(tokenKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("no key: give --key, --key-file or --private-key, or set %s", tokenKeyEnv)
		}
	}
	if len(key) < token.MinHS256Key {
		return nil, fmt.Errorf("the HS256 key is %d bytes, want at least %d", len(key), token.MinHS256Key)
	}
	return []byte(key), nil
}

// splitIDs splits a comma-separated list of channel ids, dropping empty
// ones.
func splitIDs(list string) []string {
	var ids []string
	for id := range strings.SplitSeq(list, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}
