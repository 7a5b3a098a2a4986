package token

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/simple-comet/caddy-comet/hub"
)

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
	v := newTestVerifier(t, Options{Secret: []byte(testSecret), Issuer: "iss-A", Audience: "aud-A"}, newTestClock())
	for _, c := range strictClaimsCases {
		channel := cmp.Or(c.channel, "news")
		err := checkToken(v, signPayload(t, c.payload), "subscribe", channel)
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
	v := newTestVerifier(t, Options{Secret: []byte(testSecret)}, newTestClock())
	token := signPayload(t, `{"exp":1800003600,"exp":1800003600}`)
	forged := token[:strings.LastIndex(token, ".")+1] + strings.Repeat("A", 43)
	wantRefused(t, "a forged token with exp twice", checkToken(v, forged, "subscribe", "news"), ErrSignature)
	wantRefused(t, "the signed token with exp twice", checkToken(v, token, "subscribe", "news"), ErrMalformed)
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
