package comet

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/token"
)

// JWT makes a route ask for a signed token (a JSON Web Token) before it
// serves the operations it requires one for: user 42's page gets a token
// for inbox-42 from the site's back end, and reads inbox-42 and nothing
// else. The token comes as the token query parameter (script tags and
// EventSource cannot send headers) or as an Authorization: Bearer header;
// what it allows is in its comet claim:
//
//	{"exp": 1767225600,
//	 "comet": {"subscribe": ["news", "inbox-42"], "publish": ["chat"],
//	           "manage": true, "status": true}}
//
// "*" in a list stands for every channel. exp is required. Claims are
// read as RFC 7519 has them (token/claims.go): names are case-sensitive, a
// name given twice in any object of the claims makes the token malformed,
// exp, nbf and iat are JSON numbers, iss a string, aud a string or a list
// of them, and comet has no members but these four. A read of
// several channels (a|b) must be covered for every one of them; publish
// needs the channel in publish; manage (registering and deleting
// channels, registering clients) needs "manage": true and status needs
// "status": true. The client scripts and the health probe never need a
// token. A request refused gets 403 with return_code -1 and a message that
// says which check failed.
//
// The key is either Key (HS256, a shared secret of at least 32 bytes) or
// PublicKey (RS256 for an RSA key, ES256 for a P-256 key); a token signed
// with any other algorithm, "none" included, is refused, so a public key
// can never be used as an HMAC secret.
//
// Caddyfile (a subdirective of comet):
//
//	jwt {
//		key        <secret>              # HS256; or:
//		public_key <pem-file|pem-text>   # RS256 / ES256
//		require    <operation...>        # default: every operation the route allows
//		issuer     <iss>
//		audience   <aud>
//		leeway     <duration>
//	}
//
// JSON (the handler's "jwt" field):
//
//	{"key": "{env.COMET_JWT_KEY}", "require": ["subscribe", "publish"],
//	 "issuer": "https://auth.example.com", "audience": "comet", "leeway": "30s"}
type JWT struct {
	// Key is the HS256 shared secret, taken as its bytes (at least 32 of
	// them). Placeholders such as {env.COMET_JWT_KEY} or
	// {file./etc/caddy/jwt.key} are replaced when the configuration
	// loads, so the secret need not be in the config. Default: none; one
	// of Key and PublicKey is required.
	Key string `json:"key,omitempty"`

	// PublicKey is the RS256 or ES256 public key, in PEM: the path of a PEM
	// file, or the PEM text itself (it starts with -----BEGIN). An RSA key
	// (at least 2048 bits) means RS256, an ECDSA P-256 key ES256.
	// Placeholders are replaced when the configuration loads. Default:
	// none; one of Key and PublicKey is required.
	PublicKey string `json:"public_key,omitempty"`

	// Require lists the operations that need a token: subscribe, publish,
	// manage, status. Each must be one the route allows. Default: every
	// operation the route allows.
	Require []string `json:"require,omitempty"`

	// Issuer, when set, is the iss claim a token must have. Default: any
	// issuer, or none.
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, must be in the aud claim of a token. Default:
	// any audience, or none.
	Audience string `json:"audience,omitempty"`

	// Leeway is the clock skew allowed on exp and nbf: a token is taken
	// until exp plus Leeway. Default: 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	verifier *token.Verifier
	required map[string]bool
	// now is the verifier's clock; tests set it. Default: time.Now.
	now func() time.Time
}

// provision checks the configuration, replaces placeholders in the keys
// and builds the verifier. allowed are the operations the route serves.
func (j *JWT) provision(logger *zap.Logger, allowed []string) error {
	if j.Leeway < 0 {
		return fmt.Errorf("jwt: leeway must not be negative")
	}
	opts, err := j.loadKey()
	if err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	require := j.Require
	if len(require) == 0 {
		require = allowed
	}
	j.required = make(map[string]bool, len(require))
	for _, op := range require {
		if !slices.Contains(allOps, op) {
			return fmt.Errorf("jwt: require: unknown operation %q (want %s)", op, strings.Join(allOps, ", "))
		}
		if !slices.Contains(allowed, op) {
			return fmt.Errorf("jwt: require: %s is not allowed on this route (allow %s)", op, strings.Join(allowed, " "))
		}
		j.required[op] = true
	}
	opts.Issuer, opts.Audience, opts.Leeway = j.Issuer, j.Audience, time.Duration(j.Leeway)
	opts.Now, opts.Logger = j.now, logger
	if j.verifier, err = token.NewVerifier(opts); err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	return nil
}

// close stops the verifier's workers (see token.Verifier.Close).
func (j *JWT) close() {
	if j.verifier != nil {
		j.verifier.Close()
	}
}

// loadKey returns the verifier's options with the key of Key or PublicKey.
func (j *JWT) loadKey() (token.Options, error) {
	repl := caddy.NewReplacer()
	switch {
	case j.Key != "" && j.PublicKey != "":
		return token.Options{}, errors.New("set key (HS256) or public_key (RS256, ES256), not both")
	case j.Key != "":
		secret := repl.ReplaceKnown(j.Key, "")
		if len(secret) < token.MinHS256Key {
			return token.Options{}, fmt.Errorf("key: %d bytes, HS256 wants at least %d (is the placeholder's variable set?)", len(secret), token.MinHS256Key)
		}
		return token.Options{Secret: []byte(secret)}, nil
	case j.PublicKey != "":
		text := repl.ReplaceKnown(j.PublicKey, "")
		pemBytes := []byte(text)
		if !strings.HasPrefix(strings.TrimSpace(text), "-----BEGIN") {
			var err error
			if pemBytes, err = os.ReadFile(text); err != nil {
				return token.Options{}, fmt.Errorf("public_key: reading the PEM file: %w", err)
			}
		}
		key, err := token.ParsePublicKey(pemBytes)
		if err != nil {
			return token.Options{}, fmt.Errorf("public_key: %w", err)
		}
		return token.Options{PublicKey: key}, nil
	}
	return token.Options{}, errors.New("no key: set key (HS256 secret) or public_key (RS256, ES256 PEM)")
}
