package token

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a token that Sign makes.
type Claims struct {
	// Grant is the comet claim. Its Until is not written: ExpiresAt is.
	Grant Grant

	// ExpiresAt is the exp claim, which a route requires. Default: none;
	// Sign refuses a zero ExpiresAt.
	ExpiresAt time.Time

	// IssuedAt is the iat claim. Default: none.
	IssuedAt time.Time

	// Issuer is the iss claim. Default: none.
	Issuer string

	// Subject is the sub claim: whom the token is for. Routes do not
	// check it. Default: none.
	Subject string

	// Audience is the aud claim, written as a list of one. Default: none.
	Audience string
}

// Sign makes a token of c, signed with key: HS256 for a []byte secret of
// at least MinHS256Key bytes, RS256 for an *rsa.PrivateKey, ES256 for an
// *ecdsa.PrivateKey on P-256 (as ParsePrivateKey returns them).
func Sign(c Claims, key any) (string, error) {
	method, err := signingMethod(key)
	if err != nil {
		return "", err
	}
	if c.ExpiresAt.IsZero() {
		return "", errors.New("no exp: a route takes no token without one")
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		Comet: c.Grant,
	}
	if !c.IssuedAt.IsZero() {
		claims.IssuedAt = jwt.NewNumericDate(c.IssuedAt)
	}
	if c.Audience != "" {
		claims.Audience = jwt.ClaimStrings{c.Audience}
	}
	token, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing the token: %w", err)
	}
	return token, nil
}
