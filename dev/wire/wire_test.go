// Package wire_test checks with a JavaScript parser, esbuild, which the
// plugin's module does not require, that package wire's JSON-P replies
// parse as a call to the callback the request names.
package wire_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
)

const testBody = `{"return_code":1,"error_message":""}`

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

func jsonpBody(t testing.TB, cb string, body []byte) string {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := wire.Write(rec, http.StatusOK, wire.Options{Format: wire.JSONP, Callback: cb}, body, false); err != nil {
		t.Fatal(err)
	}
	return rec.Body.String()
}

func TestJSONPParsesAsCall(t *testing.T) {
	for _, cb := range []string{wire.DefaultCallback, "_JSONP_a.b.c", "_JSONP_", "_JSONP_a.if"} {
		body := jsonpBody(t, cb, wire.NewObject(nil).String("content", "</script>\u2028").Bytes())
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

// Every callback that wire.ValidCallback accepts gives a reply that parses
// as a call when the name is a member chain, and as nothing otherwise. The
// grammar itself is fuzzed by jsonp's FuzzValidCallback; this corpus starts
// from that one.
func FuzzCallbackParses(f *testing.F) {
	for _, s := range []string{
		wire.DefaultCallback, "_JSONP_", "_JSONP_a.b", "_JSONP_a..b", "_JSONP_.1", "_JSONP_a.if",
		wire.CallbackPrefix + strings.Repeat("x", wire.MaxCallbackLength-len(wire.CallbackPrefix)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cb string) {
		if cb == "" || !wire.ValidCallback(cb) {
			return // the default callback, or a refused one: tested by package wire
		}
		body := jsonpBody(t, cb, []byte(testBody))
		errs := jsErrors(body)
		if memberChain(cb) && len(errs) > 0 {
			t.Fatalf("callback %q: %q does not parse: %v", cb, body, errs[0].Text)
		}
		if !memberChain(cb) && len(errs) == 0 {
			t.Fatalf("callback %q: %q parses although the name is not a member chain", cb, body)
		}
	})
}
