package jsonp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileStrings try to break out of a JSON string, a JavaScript call or an
// HTML <script> element, or are not valid UTF-8.
var hostileStrings = []string{
	"",
	"plain",
	"</script><script>alert(1)</script>",
	"</SCRIPT>",
	"<!-- <script>",
	`"`,
	`\`,
	`\"`,
	`"});alert(1);//`,
	"]);alert(1)//",
	"'); alert(1); //",
	"a\u2028b\u2029c",
	"\u2028",
	"\u2029",
	"&amp; &lt;",
	"<>&",
	"\x00\x01\x07\x08\x0b\x0c\x1b\x1f",
	"\t\n\r",
	"\x7f",
	"\xff",
	"\xc0\xaf",     // overlong '/'
	"\xed\xa0\x80", // UTF-16 surrogate encoded in UTF-8
	"a\xe2\x80",    // truncated U+2028
	"\xe2\x80\xa8\xff\xe2\x80\xa9",
	"\ufffd",
	"\U0001F600 emoji",
	"日本語",
	"\\u003c/script>",
	"*/ alert(1) /*",
	"/*-secure- */",
	"*/ document.title='PWNED-'+document.domain; /*",
	"**/", "*/*/", "*", "/", "a*",
}

// replaceInvalidUTF8 is s with each invalid byte replaced by U+FFFD, as the
// encoder writes it.
func replaceInvalidUTF8(s string) string { return string([]rune(s)) }

// checkSafeString checks that enc, the encoding of s by AppendString, is a
// JSON string that decodes to s (invalid bytes as U+FFFD) and holds none of
// the raw characters that could end an HTML <script> element or a
// JavaScript string in old engines.
func checkSafeString(t testing.TB, s string, enc []byte) {
	t.Helper()
	if !json.Valid(enc) {
		t.Fatalf("AppendString(%q) = %q: not valid JSON", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("AppendString(%q) = %q: %v", s, enc, err)
	}
	if want := replaceInvalidUTF8(s); got != want {
		t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got, want)
	}
	if !utf8.Valid(enc) {
		t.Fatalf("AppendString(%q) = %q: not valid UTF-8", s, enc)
	}
	for _, raw := range []string{"<", ">", "&", "\u2028", "\u2029", "*/"} {
		if bytes.Contains(enc, []byte(raw)) {
			t.Fatalf("AppendString(%q) = %q: contains raw %q", s, enc, raw)
		}
	}
}

func TestAppendStringHostile(t *testing.T) {
	for _, s := range hostileStrings {
		checkSafeString(t, s, AppendString(nil, s))
	}
}

func TestAppendStringExact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"</script>", `"\u003c/script\u003e"`},
		{"a&b", `"a\u0026b"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\xff", `"\ufffd"`},
		{"a\xffb\xfe", `"a\ufffdb\ufffd"`},
		{"é\U0001F600", "\"é\U0001F600\""},
		{"\x7f", "\"\x7f\""},
		// A '/' is escaped only where it would end a comment.
		{"*/", `"*\/"`},
		{"**/x", `"**\/x"`},
		{"*/*/", `"*\/*\/"`},
		{"/*", `"/*"`},
		{"a/b", `"a/b"`},
		{"/", `"/"`},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAppendStringAppends(t *testing.T) {
	got := string(AppendString([]byte("x:"), "<y>"))
	if want := `x:"\u003cy\u003e"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestObject(t *testing.T) {
	msgs := []byte(`{"a":[{"content":"m","id":7,"ts":1}]}`)
	body := NewObject(nil).
		Int("since", 0).
		Raw("messages", msgs).
		RawFunc("list", func(dst []byte) []byte { return append(dst, "[1,2]"...) }).
		Int("last_id", -5).
		Bool("removed", true).
		Bool("other", false).
		String("error_message", "").
		Bytes()
	want := `{"since":0,"messages":{"a":[{"content":"m","id":7,"ts":1}]},"list":[1,2],"last_id":-5,"removed":true,"other":false,"error_message":""}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

func TestObjectEmpty(t *testing.T) {
	if got := string(NewObject(nil).Bytes()); got != "{}" {
		t.Errorf("empty object = %s, want {}", got)
	}
}

func TestObjectReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 64)
	buf = append(buf, "left over from before"...)
	got := NewObject(buf).Int("a", 1).Bytes()
	if string(got) != `{"a":1}` {
		t.Errorf("got %s, want {\"a\":1}", got)
	}
	if &got[0] != &buf[0] {
		t.Error("NewObject did not append to the buffer it was given")
	}
}

// Keys and values alike are escaped: a channel id is a key in a read reply.
func TestObjectHostileKeysAndValues(t *testing.T) {
	for _, s := range hostileStrings {
		body := NewObject(nil).String(s, s).String("k", s).Bytes()
		var got map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("object with %q: %s is not JSON: %v", s, body, err)
		}
		want := replaceInvalidUTF8(s)
		if got[want] != want || got["k"] != want {
			t.Errorf("object with %q decodes to %q", s, got)
		}
		for _, raw := range []string{"<", ">", "&", "\u2028", "\u2029"} {
			if strings.Contains(string(body), raw) {
				t.Errorf("object with %q: %s contains raw %q", s, body, raw)
			}
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := strings.Repeat("plain ASCII message content, ", 10) + "<b>&</b> \u2028 é"
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
