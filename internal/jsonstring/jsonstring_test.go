package jsonstring

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkSafe checks that enc, the encoding of s by Append, is a
// JSON string that decodes to s (invalid bytes as U+FFFD) and holds none of
// the raw characters that could end an HTML <script> element or a
// JavaScript string in old engines.
func checkSafe(t testing.TB, s string, enc []byte) {
	t.Helper()
	if !json.Valid(enc) {
		t.Fatalf("Append(%q) = %q: not valid JSON", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("Append(%q) = %q: %v", s, enc, err)
	}
	if want := replaceInvalidUTF8(s); got != want {
		t.Fatalf("Append(%q) decodes to %q, want %q", s, got, want)
	}
	if !utf8.Valid(enc) {
		t.Fatalf("Append(%q) = %q: not valid UTF-8", s, enc)
	}
	for _, raw := range []string{"<", ">", "&", "\u2028", "\u2029", "*/"} {
		if bytes.Contains(enc, []byte(raw)) {
			t.Fatalf("Append(%q) = %q: contains raw %q", s, enc, raw)
		}
	}
}

func TestAppendHostile(t *testing.T) {
	for _, s := range Hostile {
		checkSafe(t, s, Append(nil, s))
	}
}

func TestAppendExact(t *testing.T) {
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
		if got := string(Append(nil, tt.in)); got != tt.want {
			t.Errorf("Append(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAppendAppends(t *testing.T) {
	got := string(Append([]byte("x:"), "<y>"))
	if want := `x:"\u003cy\u003e"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := strings.Repeat("plain ASCII message content, ", 10) + "<b>&</b> \u2028 é"
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = Append(buf[:0], s)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range Hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSafe(t, s, Append(nil, s))
	})
}

// replaceInvalidUTF8 is s with each invalid byte replaced by U+FFFD, as
// Append writes it.
func replaceInvalidUTF8(s string) string { return string([]rune(s)) }
