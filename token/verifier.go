package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/hub"
	"github.com/simple-comet/caddy-comet/internal/offstack"
)

// Options configure a Verifier.
type Options struct {
	// Secret is the HS256 shared secret, at least MinHS256Key bytes.
	// Default: none; one of Secret and PublicKey is required.
	Secret []byte

	// PublicKey is the RS256 key (an *rsa.PublicKey of at least 2048
	// bits) or the ES256 key (an *ecdsa.PublicKey on P-256), as
	// ParsePublicKey returns it. Default: none; one of Secret and
	// PublicKey is required.
	PublicKey any

	// Issuer, when set, is the iss claim a token must have. Default: any
	// issuer, or none.
	Issuer string

	// Audience, when set, must be in the aud claim of a token. Default:
	// any audience, or none.
	Audience string

	// Leeway is the clock skew allowed on exp and nbf: a token is taken
	// until exp plus Leeway. Default: 0.
	Leeway time.Duration

	// Now is the clock of every time check, the cache's included.
	// Default: time.Now.
	Now func() time.Time

	// Logger logs what goes wrong off the request's goroutine (a
	// verification that panicked). Default: no logs.
	Logger *zap.Logger
}

// Verifier verifies the tokens of one route: signed with its one key and
// algorithm, with the claims it asks for. It caches the tokens that
// verified, and verifies the others on worker goroutines of its own,
// which Close stops. A Verifier is safe for concurrent use.
type Verifier struct {
	alg     string         // the one algorithm tokens may use
	key     any            // []byte, *rsa.PublicKey or *ecdsa.PublicKey
	parser  *jwt.Parser    // checks the algorithm and the signature
	claims  *jwt.Validator // checks exp, nbf, iss and aud, once they are read
	leeway  time.Duration
	now     func() time.Time
	logger  *zap.Logger
	cache   *cache
	workers *offstack.Runner
}

// NewVerifier returns a verifier of the tokens that o describes.
func NewVerifier(o Options) (*Verifier, error) {
	v := &Verifier{leeway: o.Leeway, now: o.Now, logger: o.Logger, workers: newWorkers()}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = zap.NewNop()
	}
	if o.Leeway < 0 {
		return nil, errors.New("leeway must not be negative")
	}
	switch {
	case o.Secret != nil && o.PublicKey != nil:
		return nil, errors.New("a secret (HS256) or a public key (RS256, ES256), not both")
	case o.Secret != nil:
		if len(o.Secret) < MinHS256Key {
			return nil, fmt.Errorf("an HS256 secret of %d bytes, want at least %d", len(o.Secret), MinHS256Key)
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), o.Secret
	case o.PublicKey != nil:
		method, err := publicKeyMethod(o.PublicKey)
		if err != nil {
			return nil, err
		}
		v.alg, v.key = method.Alg(), o.PublicKey
	default:
		return nil, errors.New("no key: a secret (HS256) or a public key (RS256, ES256)")
	}

	v.parser = jwt.NewParser(
		// Exactly the configured algorithm: not "none", and never a public
		// key's bytes taken as an HMAC secret.
		jwt.WithValidMethods([]string{v.alg}),
		// One spelling of each token: a token with other trailing bits
		// in its base64 is refused, not a second cache entry.
		jwt.WithStrictDecoding(),
		// The claims are read and checked once the signature holds
		// (verifyNow), not by the parser's decoder.
		jwt.WithoutClaimsValidation(),
	)
	claimOpts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(v.now),
	}
	if o.Issuer != "" {
		claimOpts = append(claimOpts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		claimOpts = append(claimOpts, jwt.WithAudience(o.Audience))
	}
	v.claims = jwt.NewValidator(claimOpts...)
	v.cache = newCache(maxCachedTokens, maxCachedBytes)
	return v, nil
}

// Algorithm returns the one algorithm the verifier takes: HS256, RS256 or
// ES256.
func (v *Verifier) Algorithm() string { return v.alg }

// The reasons a token is refused, each the error message of a 403 with
// return code -1. Refusals match them with errors.Is, whatever detail
// they carry.
var (
	ErrMissing          = &hub.Error{Code: hub.CodeBadRequest, Message: "Missing token", Detail: "send it as the token query parameter or an Authorization: Bearer header"}
	ErrTwice            = &hub.Error{Code: hub.CodeBadRequest, Message: "Token given more than once"}
	ErrTooLong          = &hub.Error{Code: hub.CodeBadRequest, Message: "Token too long", Detail: fmt.Sprintf("at most %d bytes", MaxLength)}
	ErrMalformed        = &hub.Error{Code: hub.CodeBadRequest, Message: "Malformed token"}
	ErrAlgorithm        = &hub.Error{Code: hub.CodeBadRequest, Message: "Token algorithm not allowed"}
	ErrSignature        = &hub.Error{Code: hub.CodeBadRequest, Message: "Bad token signature"}
	ErrExpired          = &hub.Error{Code: hub.CodeBadRequest, Message: "Token expired"}
	ErrNotYet           = &hub.Error{Code: hub.CodeBadRequest, Message: "Token not valid yet"}
	ErrNoExpiry         = &hub.Error{Code: hub.CodeBadRequest, Message: "Token has no exp claim"}
	ErrIssuer           = &hub.Error{Code: hub.CodeBadRequest, Message: "Wrong token issuer"}
	ErrAudience         = &hub.Error{Code: hub.CodeBadRequest, Message: "Wrong token audience"}
	ErrChannelUncovered = &hub.Error{Code: hub.CodeBadRequest, Message: "Channel not covered by token"}
	ErrOpUncovered      = &hub.Error{Code: hub.CodeBadRequest, Message: "Operation not covered by token"}
)

// Check returns the grant of the request's token when it allows op on
// channels (see Grant.Allows), and otherwise the *hub.Error that says why
// not, or the context's error when the request ended while its token
// waited to be verified. It is the one check a request needs: where the
// token is (FromRequest), Verify, and Allows.
func (v *Verifier) Check(r *http.Request, op, channels string) (*Grant, error) {
	token, err := FromRequest(r)
	if err != nil {
		return nil, err
	}
	g, err := v.Verify(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if err := g.Allows(op, channels); err != nil {
		return nil, err
	}
	return g, nil
}

// Verify returns what a token grants, from the cache while the token is in
// it and unexpired, or else verified on one of the verifier's workers. It
// returns a *hub.Error for a token refused, and ctx's error when ctx ends
// while the token waits for a worker or its verdict.
func (v *Verifier) Verify(ctx context.Context, token string) (*Grant, error) {
	now := v.now()
	if g := v.cache.get(token, now); g != nil {
		return g, nil
	}
	return v.verifyOffStack(ctx, token, now)
}

// verdict is what verifyNow found.
type verdict struct {
	grant *Grant
	err   *hub.Error
}

// result returns the verdict as Verify does: a nil error when there is no
// refusal, never a nil *hub.Error in an error.
func (d verdict) result() (*Grant, error) {
	if d.err != nil {
		return nil, d.err
	}
	return d.grant, nil
}

// verifyNow verifies a token that is not in the cache, and caches it if it
// is valid.
func (v *Verifier) verifyNow(token string, now time.Time) verdict {
	var signed signedClaims
	tok, err := v.parser.ParseWithClaims(token, &signed, v.keyFunc)
	if err != nil {
		return verdict{err: v.refusal(tok, err)}
	}
	// Signed with the route's key: only now are the claims read, by their
	// strict decoder (claims.go), so that a client without the key never
	// makes the hub run it; then they are checked.
	var claims tokenClaims
	if err := claims.UnmarshalJSON(signed.payload); err != nil {
		return verdict{err: ErrMalformed.With(err.Error())}
	}
	if err := v.claims.Validate(&claims); err != nil {
		return verdict{err: v.refusal(tok, err)}
	}
	// Taken until exp plus leeway, as the validator does (WithLeeway), and
	// never after: exp is required, so it is set.
	g := &claims.Comet
	g.Until = claims.ExpiresAt.Add(v.leeway)
	v.cache.put(token, g, g.Until, now)
	return verdict{grant: g}
}

// keyFunc gives the parser the key. The parser has already refused any
// algorithm but v.alg (WithValidMethods); checking again costs nothing and
// keeps the key from ever meeting another algorithm.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if t.Method == nil || t.Method.Alg() != v.alg {
		return nil, errors.New("unexpected signing method")
	}
	return v.key, nil
}

// refusal maps the parser's or the validator's error to the check that
// failed. Several checks can fail at once (an expired token with the wrong
// issuer); the first in this order is the one reported.
func (v *Verifier) refusal(tok *jwt.Token, err error) *hub.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case tok != nil && (tok.Method == nil || tok.Method.Alg() != v.alg):
		// An unknown, missing or other algorithm than the route's: the
		// parser refuses it before it looks at the signature.
		return ErrAlgorithm.With("this route takes " + v.alg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ErrNotYet
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return missingClaim(err)
	}
	return ErrMalformed
}

// missingClaim tells which required claim a token lacks: exp, or iss or
// aud when the route checks them.
func missingClaim(err error) *hub.Error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "exp claim"):
		return ErrNoExpiry
	case strings.Contains(msg, "iss claim"):
		return ErrIssuer.With("no iss claim")
	case strings.Contains(msg, "aud claim"):
		return ErrAudience.With("no aud claim")
	}
	return ErrMalformed
}
