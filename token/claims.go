package token

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims a token is decoded into, by UnmarshalJSON.
type tokenClaims struct {
	jwt.RegisteredClaims
	Comet Grant `json:"comet"`
}

// signedClaims is what the parser decodes a token's claims into: nothing
// but their bytes, for tokenClaims.UnmarshalJSON to read once the signature
// is checked. The parser validates no claims (WithoutClaimsValidation), so
// the zero RegisteredClaims, there to make it a jwt.Claims, is never read.
type signedClaims struct {
	jwt.RegisteredClaims
	payload []byte
}

// UnmarshalJSON keeps the claims' bytes. json.Unmarshal has checked that
// they are one JSON value; for claims that are null it is not called, and
// tokenClaims.UnmarshalJSON refuses the nil payload left.
func (c *signedClaims) UnmarshalJSON(data []byte) error {
	c.payload = bytes.Clone(data)
	return nil
}

// maxNumericDate is the latest exp, nbf or iat taken, in seconds since
// 1970: the last second of the year 9999. Far beyond it a time claim
// stops being a date (past 2^63 seconds, time.Unix wraps around into the
// past, which would make a distant nbf one long gone).
const maxNumericDate = 253402300799

// claimsError is why a token's claims were refused; verifyNow gives it as
// the detail of ErrMalformed.
type claimsError struct{ detail string }

func (e *claimsError) Error() string { return e.detail }

func malformedClaims(format string, args ...any) error {
	return &claimsError{detail: fmt.Sprintf(format, args...)}
}

// UnmarshalJSON decodes a token's claims set, once its signature holds
// (Verifier.verifyNow), for the validator to check. encoding/json, decoding
// into a struct, would match names regardless of case, folding "EXP",
// "cOmEt" and "ſubscribe" (U+017F) onto exp, comet and subscribe, and let
// the last of a repeated name win: a token would say one thing to its
// issuer, or to any verifier that reads names as RFC 7519 (7.3) does, and
// another to the hub. Here names match exactly; a name given twice in
// any object of the claims makes the token malformed (RFC 7519, 4, lets a
// verifier refuse it); and each registered claim has its type of RFC 7519
// (4.1): exp, nbf and iat numbers, iss, sub and jti strings, aud a string
// or a list of them.
func (c *tokenClaims) UnmarshalJSON(data []byte) error {
	// RFC 7519 (7.2, step 10): the claims are UTF-8. encoding/json would turn each
	// invalid byte into U+FFFD, so that two different names compared equal.
	if !utf8.Valid(data) {
		return malformedClaims("the claims are not UTF-8")
	}
	d := claimsDecoder{dec: json.NewDecoder(bytes.NewReader(data)), seen: make(map[memberName]struct{})}
	d.dec.UseNumber()
	var claims tokenClaims
	if err := d.claimsSet(&claims); err != nil {
		return err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return errClaimsNotJSON
	}
	*c = claims
	return nil
}

var errClaimsNotJSON = malformedClaims("the claims are not a JSON object")

// claimsDecoder reads a claims set token by token.
type claimsDecoder struct {
	dec *json.Decoder
	// seen holds the names met so far, each with the number of the object
	// it is in: objects counts the objects opened.
	seen    map[memberName]struct{}
	objects int
}

type memberName struct {
	object int
	name   string
}

// token reads the next token. The parser has checked that the claims are
// JSON, so an error means they were not the value of one JSON object.
func (d *claimsDecoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, errClaimsNotJSON
	}
	return tok, nil
}

// claimsSet reads the claims set into c.
func (d *claimsDecoder) claimsSet(c *tokenClaims) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errClaimsNotJSON
	}
	return d.members("", func(name string) (err error) {
		switch name {
		case "exp":
			c.ExpiresAt, err = d.numericDate(name)
		case "nbf":
			c.NotBefore, err = d.numericDate(name)
		case "iat":
			c.IssuedAt, err = d.numericDate(name)
		case "iss":
			c.Issuer, err = d.string(name)
		case "sub":
			c.Subject, err = d.string(name)
		case "jti":
			c.ID, err = d.string(name)
		case "aud":
			c.Audience, err = d.audience()
		case "comet":
			err = d.grant(&c.Comet)
		default:
			// A claim the hub does not know is ignored, as RFC 7519 (4)
			// asks, but not a name repeated within it.
			err = d.skip(name)
		}
		return err
	})
}

// members reads the members of an object whose { was the last token read,
// up to its }, calling member to read each one's value. claim is the claim
// the object is (or is in), "" for the claims set itself.
func (d *claimsDecoder) members(claim string, member func(name string) error) error {
	d.objects++
	object := d.objects
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return err
		}
		name, _ := tok.(string) // within an object, a name comes before its value
		if err := d.remember(object, name, claim); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
	_, err := d.token() // }
	return err
}

// remember records name as a member of object, and refuses it if it is
// there already.
func (d *claimsDecoder) remember(object int, name, claim string) error {
	key := memberName{object, name}
	if _, dup := d.seen[key]; dup {
		if claim == "" {
			return malformedClaims("claim %s given twice", quoteID(name))
		}
		return malformedClaims("%s given twice in claim %s", quoteID(name), quoteID(claim))
	}
	d.seen[key] = struct{}{}
	return nil
}

// skip reads a value the hub does not use, the value of claim or within
// it, refusing a name given twice in any of its objects. It keeps its own
// stack rather than recursing, so that a deeply nested value costs a slice
// of the heap, not a goroutine stack.
func (d *claimsDecoder) skip(claim string) error {
	// open holds the objects (by number) and the arrays (0) the decoder
	// is inside, innermost last; atName is whether a member name (or the
	// end of the innermost object) comes next.
	var open []int
	atName := false
	for {
		tok, err := d.token()
		if err != nil {
			return err
		}
		switch {
		case atName && tok != json.Delim('}'):
			name, _ := tok.(string)
			if err := d.remember(open[len(open)-1], name, claim); err != nil {
				return err
			}
			atName = false
			continue
		case tok == json.Delim('{'):
			d.objects++
			open = append(open, d.objects)
			atName = true
			continue
		case tok == json.Delim('['):
			open = append(open, 0)
			continue
		case tok == json.Delim('}'), tok == json.Delim(']'):
			open = open[:len(open)-1]
		}
		// A value ended; inside an object, a name or its end comes next.
		if len(open) == 0 {
			return nil
		}
		atName = open[len(open)-1] != 0
	}
}

// numericDate reads a NumericDate (RFC 7519, 2): a JSON number of seconds
// since 1970, with a fraction or not. A string of digits is not one
// (encoding/json's json.Number, which the library's NumericDate decodes
// with, takes "1796418481"), and neither is null.
func (d *claimsDecoder) numericDate(claim string) (*jwt.NumericDate, error) {
	tok, err := d.token()
	if err != nil {
		return nil, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return nil, malformedClaims("%s is not a number", claim)
	}
	// A JSON number parses, or overflows to an infinity: never NaN.
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return nil, malformedClaims("%s is out of range (0 to %d)", claim, maxNumericDate)
	}
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
}

// string reads a claim that is a string.
func (d *claimsDecoder) string(claim string) (string, error) {
	tok, err := d.token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", malformedClaims("%s is not a string", claim)
	}
	return s, nil
}

// audience reads aud: a string, or a list of strings (RFC 7519, 4.1.3).
func (d *claimsDecoder) audience() (jwt.ClaimStrings, error) {
	tok, err := d.token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case string:
		return jwt.ClaimStrings{tok}, nil
	case json.Delim:
		if tok == '[' {
			return d.strings("aud", "a string or a list of strings")
		}
	}
	return nil, malformedClaims("aud is not a string or a list of strings")
}

// strings reads the strings of a list whose [ was the last token read, up
// to its ]. An element that is not a string is an error: "what is not
// want".
func (d *claimsDecoder) strings(what, want string) ([]string, error) {
	var list []string
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return nil, err
		}
		s, ok := tok.(string)
		if !ok {
			return nil, malformedClaims("%s is not %s", what, want)
		}
		list = append(list, s)
	}
	_, err := d.token() // ]
	return list, err
}

// grant reads the comet claim. Its members are this hub's own, so one it
// does not know is refused, not ignored: a back end that writes
// "Subscribe" (a Go struct without tags does) learns why, rather than
// finding its tokens grant nothing. null, for the claim or a member, is
// none, as encoding/json writes a nil slice.
func (d *claimsDecoder) grant(g *Grant) error {
	tok, err := d.token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('{') {
		return malformedClaims("comet is not an object")
	}
	return d.members("comet", func(name string) (err error) {
		switch name {
		case "subscribe":
			g.Subscribe, err = d.channels("comet.subscribe")
		case "publish":
			g.Publish, err = d.channels("comet.publish")
		case "manage":
			g.Manage, err = d.flag("comet.manage")
		case "status":
			g.Status, err = d.flag("comet.status")
		default:
			err = malformedClaims("comet has no member %s (it has subscribe, publish, manage and status; names are case-sensitive)", quoteID(name))
		}
		return err
	})
}

// channels reads a list of channel ids of the comet claim.
func (d *claimsDecoder) channels(member string) ([]string, error) {
	tok, err := d.token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, malformedClaims("%s is not a list of strings", member)
	}
	return d.strings(member, "a list of strings")
}

// flag reads a yes-or-no member of the comet claim.
func (d *claimsDecoder) flag(member string) (bool, error) {
	tok, err := d.token()
	if err != nil || tok == nil {
		return false, err
	}
	b, ok := tok.(bool)
	if !ok {
		return false, malformedClaims("%s is not true or false", member)
	}
	return b, nil
}
