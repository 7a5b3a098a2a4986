package token

import (
	"net/http"
	"net/url"
	"strings"
)

// FromRequest returns the request's token: the token query parameter or
// an Authorization: Bearer header. The same token sent both ways is taken;
// two tokens are refused rather than one of them picked. Authorization
// headers of other schemes (Basic, for Caddy's basic_auth) are not ours and
// are left alone. A token over MaxLength bytes is refused before it is
// unescaped. Refusals are *hub.Error values.
func FromRequest(r *http.Request) (string, error) {
	token, found, err := queryToken(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	for _, v := range r.Header.Values("Authorization") {
		scheme, bearer, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		bearer = strings.TrimSpace(bearer)
		if len(bearer) > MaxLength {
			return "", ErrTooLong
		}
		if found && bearer != token {
			return "", ErrTwice
		}
		token, found = bearer, true
	}
	if !found || token == "" {
		return "", ErrMissing
	}
	return token, nil
}

// queryToken finds the token parameter in a raw query without parsing the
// rest of it (a read parses its query later, once). Its name and value are
// unescaped as url.ParseQuery does. A value over MaxLength is refused
// before it is unescaped.
func queryToken(raw string) (token string, found bool, err error) {
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
			return "", false, ErrTwice
		}
		// Escaping takes at most three bytes a byte.
		if len(value) > 3*MaxLength {
			return "", false, ErrTooLong
		}
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				return "", false, ErrMalformed
			}
			value = v
		}
		if len(value) > MaxLength {
			return "", false, ErrTooLong
		}
		token, found = value, true
	}
	return token, found, nil
}
