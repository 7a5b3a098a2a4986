package jsonp

import (
	"strconv"
	"unicode/utf8"
)

// Object builds a JSON object field by field into a byte slice, so that a
// reply can splice in values encoded earlier (a message's JSON, encoded once
// at publish) without decoding and encoding them again.
//
// Strings are escaped so that the object is safe inside HTML and JavaScript
// too: '<', '>', '&', U+2028 and U+2029 are written as \u escapes, a '/'
// that follows '*' as "\/" (so that no string can end the comment that
// quoted JSON wraps replies in), and invalid UTF-8 as U+FFFD.
type Object struct {
	buf []byte
}

// NewObject starts an object that appends to buf (which may be nil).
func NewObject(buf []byte) *Object {
	return &Object{buf: append(buf[:0], '{')}
}

func (o *Object) key(k string) {
	if len(o.buf) > 1 {
		o.buf = append(o.buf, ',')
	}
	o.buf = AppendString(o.buf, k)
	o.buf = append(o.buf, ':')
}

// String adds a string field.
func (o *Object) String(k, v string) *Object {
	o.key(k)
	o.buf = AppendString(o.buf, v)
	return o
}

// Int adds an integer field.
func (o *Object) Int(k string, v int64) *Object {
	o.key(k)
	o.buf = strconv.AppendInt(o.buf, v, 10)
	return o
}

// Bool adds a boolean field.
func (o *Object) Bool(k string, v bool) *Object {
	o.key(k)
	o.buf = strconv.AppendBool(o.buf, v)
	return o
}

// Raw adds a field whose value is already encoded JSON.
func (o *Object) Raw(k string, v []byte) *Object {
	o.key(k)
	o.buf = append(o.buf, v...)
	return o
}

// RawFunc adds a field whose value appendValue appends, for values built
// from parts encoded earlier.
func (o *Object) RawFunc(k string, appendValue func(dst []byte) []byte) *Object {
	o.key(k)
	o.buf = appendValue(o.buf)
	return o
}

// Bytes closes the object and returns its encoding.
func (o *Object) Bytes() []byte {
	return append(o.buf, '}')
}

const hex = "0123456789abcdef"

// AppendString appends s to dst as a JSON string, escaped as Object says.
func AppendString(dst []byte, s string) []byte {
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
