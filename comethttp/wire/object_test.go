package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/internal/jsonstring"
)

// replaceInvalidUTF8 is s with each invalid byte replaced by U+FFFD, as the
// encoder writes it.
func replaceInvalidUTF8(s string) string { return string([]rune(s)) }

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
	for _, s := range jsonstring.Hostile {
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
