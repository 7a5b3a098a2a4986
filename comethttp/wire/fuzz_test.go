package wire

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/internal/jsonstring"
)

// callbackRE is the callback grammar of SPEC section 2, prefix included.
var callbackRE = regexp.MustCompile(`^_JSONP_[A-Za-z0-9_.]*$`)

func jsonpBody(t testing.TB, cb string, body []byte) string {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := Write(rec, http.StatusOK, Options{Format: JSONP, Callback: cb}, body, false); err != nil {
		t.Fatal(err)
	}
	return rec.Body.String()
}

func FuzzValidCallback(f *testing.F) {
	for _, s := range []string{
		DefaultCallback, "_JSONP_", "_JSONP_a.b", "_JSONP_a..b", "_JSONP_.1", "cb", "",
		"alert(1)//", "_JSONP_a;alert(1)", "_JSONP_</script>", "_JSONP_é", "_JSONP_\u2028",
		CallbackPrefix + strings.Repeat("x", MaxCallbackLength-len(CallbackPrefix)),
		CallbackPrefix + strings.Repeat("x", MaxCallbackLength-len(CallbackPrefix)+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cb string) {
		ok := ValidCallback(cb)
		if want := callbackRE.MatchString(cb) && len(cb) <= MaxCallbackLength; ok != want {
			t.Fatalf("ValidCallback(%q) = %v, want %v", cb, ok, want)
		}
		if cb == "" {
			return // the default callback, tested above
		}
		body := jsonpBody(t, cb, []byte(testBody))
		if !ok {
			if body != InvalidCallbackBody {
				t.Fatalf("refused callback %q: body %q", cb, body)
			}
			return
		}
		// Whether that body parses as a call is checked with a JavaScript
		// parser, esbuild, in dev/wire (FuzzCallbackParses): the plugin's
		// module does not require it.
		if want := cb + "(" + testBody + ");"; body != want {
			t.Fatalf("callback %q: body %q, want %q", cb, body, want)
		}
	})
}

// A quoted JSON reply is one comment, /*-secure- ... */: whatever strings
// its object holds, encoded by jsonstring.Append or by encoding/json (as status
// lists were, and as old messages kept by a store may be), the body holds
// no "*/" but its last, and the object inside decodes to those strings.
func FuzzQuotedReply(f *testing.F) {
	for _, s := range jsonstring.Hostile {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		marshalled, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		body := NewObject(nil).String(key, value).Raw("raw", marshalled).Bytes()
		rec := httptest.NewRecorder()
		if err := Write(rec, http.StatusOK, Options{Format: JSON, QuoteJSON: true}, body, false); err != nil {
			t.Fatal(err)
		}
		out := rec.Body.String()
		inner, ok := strings.CutPrefix(out, "/*-secure- ")
		if ok {
			inner, ok = strings.CutSuffix(inner, " */")
		}
		if !ok {
			t.Fatalf("quoted reply %q is not /*-secure- ... */", out)
		}
		if i := strings.Index(out, "*/"); i != len(out)-2 {
			t.Fatalf("quoted reply %q ends its comment at byte %d of %d", out, i, len(out))
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(inner), &got); err != nil {
			t.Fatalf("quoted reply %q: %v", out, err)
		}
		k, v := replaceInvalidUTF8(key), replaceInvalidUTF8(value)
		if got[k] != v && k != "raw" || got["raw"] != v {
			t.Fatalf("quoted reply %q decodes to %q, want %q: %q and raw: %q", out, got, k, v, v)
		}
	})
}
