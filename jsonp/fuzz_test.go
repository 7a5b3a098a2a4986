package jsonp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkSafeString(t, s, AppendString(nil, s))
	})
}

// callbackRE is the callback grammar of SPEC section 2, prefix included.
var callbackRE = regexp.MustCompile(`^_JSONP_[A-Za-z0-9_.]*$`)

// memberChain reports whether name is a JavaScript member expression made of
// ASCII identifiers (a.b.c): for those names the reply parses as a call.
// The callback grammar also admits names such as "_JSONP_a..b" or "_JSONP_.1",
// whose reply is a syntax error and so runs nothing.
func memberChain(name string) bool {
	for part := range strings.SplitSeq(name, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
	}
	return true
}

// jsErrors parses src as a script and returns esbuild's syntax errors.
func jsErrors(src string) []api.Message {
	return api.Transform(src, api.TransformOptions{Loader: api.LoaderJS, LogLevel: api.LogLevelSilent}).Errors
}

func TestJSONPParsesAsCall(t *testing.T) {
	for _, cb := range []string{DefaultCallback, "_JSONP_a.b.c", "_JSONP_", "_JSONP_a.if"} {
		body := jsonpBody(t, cb, NewObject(nil).String("content", "</script>\u2028").Bytes())
		if errs := jsErrors(body); len(errs) > 0 {
			t.Errorf("callback %q: %q does not parse: %v", cb, body, errs[0].Text)
		}
	}
	// The grammar's names that are not member chains give a script that
	// does not parse, which runs nothing.
	for _, cb := range []string{"_JSONP_a..b", "_JSONP_.1", "_JSONP_a."} {
		body := jsonpBody(t, cb, []byte(testBody))
		if errs := jsErrors(body); len(errs) == 0 {
			t.Errorf("callback %q: %q parses; the test's model of the grammar is wrong", cb, body)
		}
	}
}

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
		if want := cb + "(" + testBody + ");"; body != want {
			t.Fatalf("callback %q: body %q, want %q", cb, body, want)
		}
		errs := jsErrors(body)
		if memberChain(cb) && len(errs) > 0 {
			t.Fatalf("callback %q: %q does not parse: %v", cb, body, errs[0].Text)
		}
		if !memberChain(cb) && len(errs) == 0 {
			t.Fatalf("callback %q: %q parses although the name is not a member chain", cb, body)
		}
	})
}

// A quoted JSON reply is one comment, /*-secure- ... */: whatever strings
// its object holds, encoded by AppendString or by encoding/json (as status
// lists were, and as old messages kept by a store may be), the body holds
// no "*/" but its last, and the object inside decodes to those strings.
func FuzzQuotedReply(f *testing.F) {
	for _, s := range hostileStrings {
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
