// Package jsonstring writes JSON strings that are safe wherever the hub's
// replies go: in a JSON body, a JSON-P call inside an HTML <script> element,
// and the comment that quoted JSON wraps replies in. The hub encodes each
// message's content with it once, at publish, and the reply encoders every
// other string.
package jsonstring

import "unicode/utf8"

const hex = "0123456789abcdef"

// Append appends s to dst as a JSON string, escaped so that it is safe
// inside HTML and JavaScript too: '<', '>', '&', U+2028 and U+2029 are
// written as \u escapes, a '/' that follows '*' as "\/" (so that no string
// can end the comment that quoted JSON wraps replies in), and invalid UTF-8
// as U+FFFD.
func Append(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' &&
				(c != '/' || i == 0 || s[i-1] != '*') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\', '/':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
