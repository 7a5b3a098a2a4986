// Package client_test checks the JavaScript client of package client with
// esbuild, which the plugin's module does not require: the committed min
// files are what the generator makes, and the source is ES3.
package client_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/simple-comet/caddy-comet/client"
	"github.com/simple-comet/caddy-comet/dev/client/minify"
)

// script is the embedded file name, as the handler serves it.
func script(t *testing.T, name string) []byte {
	t.Helper()
	body, _, ok := client.Script(name)
	if !ok {
		t.Fatalf("the client package embeds no %s", name)
	}
	return body
}

// The committed min files are what the generator makes from the source.
func TestMinifiedIsGenerated(t *testing.T) {
	source := script(t, "simple-comet.js")
	for _, tc := range []struct {
		file   string
		minify func(string, []byte) ([]byte, error)
	}{
		{"simple-comet.min.js", minify.Minify},
		{"simple-comet-jsonp.min.js", minify.MinifyJSONP},
	} {
		want, err := tc.minify("simple-comet.js", source)
		if err != nil {
			t.Fatal(err)
		}
		if committed := script(t, tc.file); !bytes.Equal(committed, want) {
			t.Errorf("%s is not what the generator makes from simple-comet.js; run `go generate ./client/...`\ncommitted: %s\ngenerated: %s", tc.file, committed, want)
		}
	}
}

// TestSourceIsES3 guards the promise that the client runs in old browsers.
// esbuild cannot target ES3, and it would quietly lower some ES2015 syntax
// (arrow functions, template literals, shorthand properties) for ES5, so the
// source, stripped of comments but not lowered, is checked for the syntax
// that old engines reject. What a browser without EventSource runs, the
// JSON-P client, is checked for APIs that old browsers lack too: the event
// stream's code may use JSON, which every browser with EventSource has.
func TestSourceIsES3(t *testing.T) {
	res := api.Transform(string(script(t, "simple-comet.js")), api.TransformOptions{
		Loader:           api.LoaderJS,
		MinifyWhitespace: true,
		LegalComments:    api.LegalCommentsNone,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("parsing simple-comet.js: %v", res.Errors[0].Text)
	}
	code := string(res.Code)
	for _, bad := range []string{"=>", "`", "...", "let ", "const ", "class ", "async ", "await ", "yield", " of "} {
		if strings.Contains(code, bad) {
			t.Errorf("simple-comet.js uses %q, which ES3 browsers lack", bad)
		}
	}
	minifiedJSONP := string(script(t, "simple-comet-jsonp.min.js"))
	for _, bad := range []string{
		"fetch(", "Promise", "JSON.", "addEventListener", ".forEach(", ".map(", ".bind(",
		"document.head", "currentScript", "Object.keys", "Array.isArray", "trim(",
	} {
		if strings.Contains(minifiedJSONP, bad) {
			t.Errorf("the JSON-P client uses %q, which ES3 browsers lack", bad)
		}
	}
}
