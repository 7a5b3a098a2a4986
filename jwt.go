package comet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/jsonp"
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
// read as RFC 7519 has them (jwt_claims.go): names are case-sensitive, a
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

	alg      string         // the one algorithm tokens may use
	key      any            // []byte, *rsa.PublicKey or *ecdsa.PublicKey
	parser   *jwt.Parser    // checks the algorithm and the signature
	claims   *jwt.Validator // checks exp, nbf, iss and aud, once they are read
	required map[string]bool
	cache    *tokenCache
	logger   *zap.Logger
	// now is the clock of every time check, the cache's included; tests
	// set it. Default: time.Now.
	now func() time.Time
}

const (
	// maxTokenLength bounds a token, in bytes. It is refused before it is
	// decoded, so that no request makes the server decode, hash or keep
	// more than this. A token with a few hundred channels fits.
	maxTokenLength = 8 << 10

	// minHS256Key is the shortest HS256 secret: RFC 7518 (3.2) asks for a
	// key as long as the hash, 256 bits.
	minHS256Key = 32

	// minRSABits is the smallest RSA key taken, as RFC 7518 (3.3) asks.
	minRSABits = 2048
)

// provision checks the configuration, replaces placeholders in the keys
// and sets up the verifier. allowed are the operations the route serves.
func (j *JWT) provision(logger *zap.Logger, allowed []string) error {
	j.logger = logger
	if j.now == nil {
		j.now = time.Now
	}
	if j.Leeway < 0 {
		return fmt.Errorf("jwt: leeway must not be negative")
	}
	if err := j.loadKey(); err != nil {
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

	j.parser = jwt.NewParser(
		// Exactly the configured algorithm: not "none", and never a public
		// key's bytes taken as an HMAC secret.
		jwt.WithValidMethods([]string{j.alg}),
		// One spelling of each token: a token with other trailing bits
		// in its base64 is refused, not a second cache entry.
		jwt.WithStrictDecoding(),
		// The claims are read and checked once the signature holds
		// (verifyNow), not by the parser's decoder.
		jwt.WithoutClaimsValidation(),
	)
	claimOpts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(time.Duration(j.Leeway)),
		jwt.WithTimeFunc(func() time.Time { return j.now() }),
	}
	if j.Issuer != "" {
		claimOpts = append(claimOpts, jwt.WithIssuer(j.Issuer))
	}
	if j.Audience != "" {
		claimOpts = append(claimOpts, jwt.WithAudience(j.Audience))
	}
	j.claims = jwt.NewValidator(claimOpts...)
	j.cache = newTokenCache(maxCachedTokens, maxCachedBytes)
	return nil
}

// loadKey sets alg and key from Key or PublicKey.
func (j *JWT) loadKey() error {
	repl := caddy.NewReplacer()
	switch {
	case j.Key != "" && j.PublicKey != "":
		return errors.New("set key (HS256) or public_key (RS256, ES256), not both")
	case j.Key != "":
		secret := repl.ReplaceKnown(j.Key, "")
		if len(secret) < minHS256Key {
			return fmt.Errorf("key: %d bytes, HS256 wants at least %d (is the placeholder's variable set?)", len(secret), minHS256Key)
		}
		j.alg, j.key = jwt.SigningMethodHS256.Alg(), []byte(secret)
		return nil
	case j.PublicKey != "":
		text := repl.ReplaceKnown(j.PublicKey, "")
		pemBytes := []byte(text)
		if !strings.HasPrefix(strings.TrimSpace(text), "-----BEGIN") {
			var err error
			if pemBytes, err = os.ReadFile(text); err != nil {
				return fmt.Errorf("public_key: reading the PEM file: %w", err)
			}
		}
		alg, key, err := parsePublicKey(pemBytes)
		if err != nil {
			return fmt.Errorf("public_key: %w", err)
		}
		j.alg, j.key = alg, key
		return nil
	}
	return errors.New("no key: set key (HS256 secret) or public_key (RS256, ES256 PEM)")
}

// parsePublicKey reads a PEM public key (PKIX, or PKCS #1 for RSA) and
// returns the algorithm it verifies.
func parsePublicKey(pemBytes []byte) (alg string, key any, err error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "", nil, errors.New("no PEM block found")
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return "", nil, fmt.Errorf("a PEM block of type %q, want PUBLIC KEY (a private key does not belong on the server)", block.Type)
	}
	if err != nil {
		return "", nil, fmt.Errorf("parsing the public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", nil, fmt.Errorf("an RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return jwt.SigningMethodRS256.Alg(), k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", nil, fmt.Errorf("an ECDSA key on %s, ES256 wants P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), k, nil
	}
	return "", nil, fmt.Errorf("a %T, want an RSA (RS256) or ECDSA P-256 (ES256) key", pub)
}

// The reasons a token is refused, each the error message of a 403.
var (
	errTokenMissing     = &hub.Error{Code: hub.CodeBadRequest, Message: "Missing token", Detail: "send it as the token query parameter or an Authorization: Bearer header"}
	errTokenTwice       = &hub.Error{Code: hub.CodeBadRequest, Message: "Token given more than once"}
	errTokenTooLong     = &hub.Error{Code: hub.CodeBadRequest, Message: "Token too long", Detail: fmt.Sprintf("at most %d bytes", maxTokenLength)}
	errTokenMalformed   = &hub.Error{Code: hub.CodeBadRequest, Message: "Malformed token"}
	errTokenAlgorithm   = &hub.Error{Code: hub.CodeBadRequest, Message: "Token algorithm not allowed"}
	errTokenSignature   = &hub.Error{Code: hub.CodeBadRequest, Message: "Bad token signature"}
	errTokenExpired     = &hub.Error{Code: hub.CodeBadRequest, Message: "Token expired"}
	errTokenNotYet      = &hub.Error{Code: hub.CodeBadRequest, Message: "Token not valid yet"}
	errTokenNoExpiry    = &hub.Error{Code: hub.CodeBadRequest, Message: "Token has no exp claim"}
	errTokenIssuer      = &hub.Error{Code: hub.CodeBadRequest, Message: "Wrong token issuer"}
	errTokenAudience    = &hub.Error{Code: hub.CodeBadRequest, Message: "Wrong token audience"}
	errChannelUncovered = &hub.Error{Code: hub.CodeBadRequest, Message: "Channel not covered by token"}
	errOpUncovered      = &hub.Error{Code: hub.CodeBadRequest, Message: "Operation not covered by token"}
)

// check returns the grant of the request's token when it allows op on
// channels (the a|b list of a read, the channel of a publish; ignored for
// manage and status), and otherwise the reason it does not. It does not
// look at whether op is required: callers ask only for those.
func (j *JWT) check(r *http.Request, op, channels string) (*grant, *hub.Error) {
	token, apiErr := requestToken(r)
	if apiErr != nil {
		return nil, apiErr
	}
	g, apiErr := j.verify(token)
	if apiErr != nil {
		return nil, apiErr
	}
	if apiErr := g.allows(op, channels); apiErr != nil {
		return nil, apiErr
	}
	return g, nil
}

// allows returns nil when g allows op on channels, and otherwise the
// reason it does not.
func (g *grant) allows(op, channels string) *hub.Error {
	switch op {
	case OpSubscribe:
		for rest := channels; ; {
			ch, more, found := strings.Cut(rest, "|")
			if !covers(g.Subscribe, ch) {
				return errChannelUncovered.With("subscribe " + quoteID(ch))
			}
			if !found {
				return nil
			}
			rest = more
		}
	case OpPublish:
		if !covers(g.Publish, channels) {
			return errChannelUncovered.With("publish " + quoteID(channels))
		}
	case OpManage:
		if !g.Manage {
			return errOpUncovered.With(`manage needs "manage": true`)
		}
	case OpStatus:
		if !g.Status {
			return errOpUncovered.With(`status needs "status": true`)
		}
	default:
		return errOpUncovered.With(op)
	}
	return nil
}

// quoteID quotes a channel id for an error message, cut to the longest
// valid id: it is the client's own input, but one refused before the hub
// has checked it.
func quoteID(id string) string {
	const maxShown = 256
	if len(id) > maxShown {
		id = strings.ToValidUTF8(id[:maxShown], "") + "..."
	}
	return fmt.Sprintf("%q", id)
}

// verify returns what a token grants, from the cache while the token is in
// it and unexpired, or the reason the token is refused.
func (j *JWT) verify(token string) (*grant, *hub.Error) {
	now := j.now()
	if g := j.cache.get(token, now); g != nil {
		return g, nil
	}
	return verifyOffStack(j, token, now)
}

// verdict is what verifyNow found.
type verdict struct {
	grant *grant
	err   *hub.Error
}

// verifyNow verifies a token that is not in the cache, and caches it if it
// is valid.
func (j *JWT) verifyNow(token string, now time.Time) verdict {
	var signed signedClaims
	tok, err := j.parser.ParseWithClaims(token, &signed, j.keyFunc)
	if err != nil {
		return verdict{err: j.refusal(tok, err)}
	}
	// Signed with the route's key: only now are the claims read, by their
	// strict decoder (jwt_claims.go), so that a client without the key
	// never makes the hub run it; then they are checked.
	var claims tokenClaims
	if err := claims.UnmarshalJSON(signed.payload); err != nil {
		return verdict{err: errTokenMalformed.With(err.Error())}
	}
	if err := j.claims.Validate(&claims); err != nil {
		return verdict{err: j.refusal(tok, err)}
	}
	// Taken until exp plus leeway, as the validator does (WithLeeway), and
	// never after: exp is required, so it is set.
	until := claims.ExpiresAt.Add(time.Duration(j.Leeway))
	g := &claims.Comet
	g.until = until
	j.cache.put(token, g, until, now)
	return verdict{grant: g}
}

// keyFunc gives the parser the key. The parser has already refused any
// algorithm but j.alg (WithValidMethods); checking again costs nothing and
// keeps the key from ever meeting another algorithm.
func (j *JWT) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != j.alg {
		return nil, errors.New("unexpected signing method")
	}
	return j.key, nil
}

// refusal maps the parser's or the validator's error to the check that
// failed. Several checks can fail at once (an expired token with the wrong
// issuer); the first in this order is the one reported.
func (j *JWT) refusal(tok *jwt.Token, err error) *hub.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errTokenMalformed
	case tok != nil && (tok.Method == nil || tok.Method.Alg() != j.alg):
		// An unknown, missing or other algorithm than the route's: the
		// parser refuses it before it looks at the signature.
		return errTokenAlgorithm.With("this route takes " + j.alg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return errTokenSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return errTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errTokenNotYet
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errTokenIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errTokenAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return j.missingClaim(err)
	}
	return errTokenMalformed
}

// missingClaim tells which required claim a token lacks: exp, or iss or
// aud when the route checks them.
func (j *JWT) missingClaim(err error) *hub.Error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "exp claim"):
		return errTokenNoExpiry
	case strings.Contains(msg, "iss claim"):
		return errTokenIssuer.With("no iss claim")
	case strings.Contains(msg, "aud claim"):
		return errTokenAudience.With("no aud claim")
	}
	return errTokenMalformed
}

// requestToken returns the request's token: the token query parameter or
// an Authorization: Bearer header. The same token sent both ways is taken;
// two tokens are refused rather than one of them picked. Authorization
// headers of other schemes (Basic, for Caddy's basic_auth) are not ours and
// are left alone.
func requestToken(r *http.Request) (string, *hub.Error) {
	token, found, apiErr := queryToken(r.URL.RawQuery)
	if apiErr != nil {
		return "", apiErr
	}
	for _, v := range r.Header.Values("Authorization") {
		scheme, bearer, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		bearer = strings.TrimSpace(bearer)
		if len(bearer) > maxTokenLength {
			return "", errTokenTooLong
		}
		if found && bearer != token {
			return "", errTokenTwice
		}
		token, found = bearer, true
	}
	if !found || token == "" {
		return "", errTokenMissing
	}
	return token, nil
}

// queryToken finds the token parameter in a raw query without parsing the
// rest of it (a read parses its query later, once). Its name and value are
// unescaped as url.ParseQuery does. A value over maxTokenLength is refused
// before it is unescaped.
func queryToken(raw string) (token string, found bool, apiErr *hub.Error) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, value, _ := strings.Cut(pair, "=")
		if name != "token" {
			if !strings.ContainsAny(name, "%+") {
				continue
			}
			if n, err := url.QueryUnescape(name); err != nil || n != "token" {
				continue
			}
		}
		if found {
			return "", false, errTokenTwice
		}
		// Escaping takes at most three bytes a byte.
		if len(value) > 3*maxTokenLength {
			return "", false, errTokenTooLong
		}
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return "", false, errTokenMalformed
			}
			value = v
		}
		if len(value) > maxTokenLength {
			return "", false, errTokenTooLong
		}
		token, found = value, true
	}
	return token, found, nil
}

// authorize checks the token of a request the handler is about to serve,
// when this route has a jwt block that requires one for the request's
// operation. It answers a refused request itself (403, in the reply format
// of the path) and returns false; it returns true for everything else,
// including requests that serveAPI refuses for other reasons (unknown
// format, method or operation not allowed), so that those keep their own
// errors.
//
// until is when the token it took stops being taken (exp plus leeway), or
// zero when no token was asked for: a read held, or a stream open, must
// not outlive what allowed it.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, call apiCall) (until time.Time, ok bool) {
	if h.JWT == nil || !call.formatOK || call.resource == resScript {
		return time.Time{}, true
	}
	op := call.op
	if !h.allowed[op] || !h.JWT.required[op] {
		return time.Time{}, true // no operation, the health probe, or no token needed
	}
	g, apiErr := h.JWT.check(r, op, call.id)
	if apiErr == nil {
		return g.until, true
	}
	// Which check failed, never the token (nor the query that holds it).
	h.JWT.logger.Debug("token refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("operation", op), zap.String("reason", apiErr.Error()))
	opts := jsonp.Options{Format: call.format, Callback: r.URL.Query().Get("cb"), QuoteJSON: h.QuoteJSON}
	h.replyErrorStatus(w, r, opts, http.StatusForbidden, apiErr)
	return time.Time{}, false
}

// redactedURI is the request's URI for a log line, with the value of any
// token parameter replaced: a token in a log is a credential anyone who
// reads the log can use until it expires. It is a fmt.Stringer for
// zap.Stringer, so that the URI is redacted only when a line is logged.
func redactedURI(r *http.Request) fmt.Stringer { return logURI{r} }

type logURI struct{ r *http.Request }

func (u logURI) String() string {
	uri := u.r.RequestURI
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	pairs := strings.Split(query, "&")
	for i, pair := range pairs {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err != nil || n == "token" {
			pairs[i] = name + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(pairs, "&")
}
