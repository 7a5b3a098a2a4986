package hub_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/simple-comet/caddy-comet/hub"
)

func TestEncodeContent(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "hello", `"hello"`},
		{"less than", "<", `"\u003c"`},
		{"greater than", ">", `"\u003e"`},
		{"ampersand", "&", `"\u0026"`},
		{"line separator", "\u2028", `"\u2028"`},
		{"paragraph separator", "\u2029", `"\u2029"`},
		{"script end tag", "</script><script>alert(1)</script>", `"\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e"`},
		{"quote and backslash", `"\`, `"\"\\"`},
		{"closing the callback", `"});alert(1);//`, `"\"});alert(1);//"`},
		{"control characters", "\x00\n\t\x1f", `"\u0000\n\t\u001f"`},
		{"non-ascii kept", "ü 😀", `"ü 😀"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hub.EncodeContent(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("EncodeContent(%q) = %s, want %s", tc.in, got, tc.want)
			}
			var back string
			if err := json.Unmarshal(got, &back); err != nil || back != tc.in {
				t.Fatalf("decodes to %q (%v), want %q", back, err, tc.in)
			}
		})
	}
}

func TestEncodeContentRefusesInvalidUTF8(t *testing.T) {
	for _, in := range []string{"\xff", "a\xc3", "\xed\xa0\x80", "ok\x80ok"} {
		enc, err := hub.EncodeContent(in)
		if !errors.Is(err, hub.ErrInvalidContent) || hub.AsError(err).Code != hub.CodeBadRequest {
			t.Errorf("EncodeContent(%q) = %s, %v; want %v", in, enc, err, hub.ErrInvalidContent)
		}
	}
}

func FuzzEncodeContent(f *testing.F) {
	for _, seed := range []string{"", "x", "</script>", "\u2028\u2029", `"\`, "\x00", "\xff", "&amp;<!--", "*/ x /*"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		enc, err := hub.EncodeContent(in)
		if !utf8.ValidString(in) {
			if !errors.Is(err, hub.ErrInvalidContent) {
				t.Fatalf("invalid UTF-8 %q: %v", in, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(string(enc), "<>&\u2028\u2029") || strings.Contains(string(enc), "*/") {
			t.Fatalf("EncodeContent(%q) = %s: an unescaped character", in, enc)
		}
		var back string
		if err := json.Unmarshal(enc, &back); err != nil || back != in {
			t.Fatalf("EncodeContent(%q) = %s decodes to %q, %v", in, enc, back, err)
		}
	})
}

func TestAppendMessageJSON(t *testing.T) {
	enc, _ := hub.EncodeContent("<b>hi</b>")
	got := hub.AppendMessageJSON([]byte(`prefix:`), enc, 128916015846785, 1289160231)
	want := `prefix:{"content":"\u003cb\u003ehi\u003c/b\u003e","id":128916015846785,"ts":1289160231}`
	if string(got) != want {
		t.Fatalf("AppendMessageJSON = %s\nwant %s", got, want)
	}
	// The largest id JavaScript reads exactly survives a round trip.
	got = hub.AppendMessageJSON(nil, enc, 1<<53-1, 0)
	var v struct {
		Content string `json:"content"`
		ID      int64  `json:"id"`
		TS      int64  `json:"ts"`
	}
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if v.Content != "<b>hi</b>" || v.ID != 1<<53-1 || v.TS != 0 {
		t.Fatalf("decoded %+v", v)
	}
}

func TestNewMessage(t *testing.T) {
	enc, _ := hub.EncodeContent("hé\u2028")
	m := hub.NewMessage(enc, 42, 1700000000)
	if m.ID != 42 || string(m.JSON) != `{"content":"hé\u2028","id":42,"ts":1700000000}` {
		t.Fatalf("message %d %s", m.ID, m.JSON)
	}
	if m.Content() != "hé\u2028" || m.Time() != 1700000000 {
		t.Fatalf("decoded content %q ts %d", m.Content(), m.Time())
	}
}
