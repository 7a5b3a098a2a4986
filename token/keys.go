package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// MaxLength bounds a token, in bytes. It is refused before it is
	// decoded, so that no request makes the server decode, hash or keep
	// more than this. A token with a few hundred channels fits.
	MaxLength = 8 << 10

	// MinHS256Key is the shortest HS256 secret: RFC 7518 (3.2) asks for a
	// key as long as the hash, 256 bits.
	MinHS256Key = 32

	// minRSABits is the smallest RSA key taken, as RFC 7518 (3.3) asks.
	minRSABits = 2048
)

// ParsePublicKey reads a PEM public key (PKIX, or PKCS #1 for RSA) that
// verifies tokens: an *rsa.PublicKey of at least 2048 bits (RS256) or an
// *ecdsa.PublicKey on P-256 (ES256).
func ParsePublicKey(pemBytes []byte) (any, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a PEM block of type %q, want PUBLIC KEY (a private key does not belong on the server)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the public key: %w", err)
	}
	if _, err := publicKeyMethod(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// publicKeyMethod returns the method that verifies with key.
func publicKeyMethod(key any) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("an RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s, ES256 wants P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, nil
	}
	return nil, fmt.Errorf("a %T, want an RSA (RS256) or ECDSA P-256 (ES256) key", key)
}

// ParsePrivateKey reads a PEM private key (PKCS #8, PKCS #1 or SEC 1) that
// Sign takes: an *rsa.PrivateKey (RS256) or an *ecdsa.PrivateKey on P-256
// (ES256).
func ParsePrivateKey(pemBytes []byte) (any, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var (
		priv any
		err  error
	)
	switch block.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a PEM block of type %q, want a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	if _, err := signingMethod(priv); err != nil {
		return nil, err
	}
	return priv, nil
}

// signingMethod returns the method that signs with key.
func signingMethod(key any) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < MinHS256Key {
			return nil, fmt.Errorf("the HS256 key is %d bytes, want at least %d", len(k), MinHS256Key)
		}
		return jwt.SigningMethodHS256, nil
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s, ES256 wants P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256, nil
	}
	return nil, fmt.Errorf("a %T, want an RSA or ECDSA P-256 key", key)
}
