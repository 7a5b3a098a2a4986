package wire

import (
	"strconv"

	"github.com/simple-comet/caddy-comet/internal/jsonstring"
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
	o.buf = jsonstring.Append(o.buf, k)
	o.buf = append(o.buf, ':')
}

// String adds a string field.
func (o *Object) String(k, v string) *Object {
	o.key(k)
	o.buf = jsonstring.Append(o.buf, v)
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
