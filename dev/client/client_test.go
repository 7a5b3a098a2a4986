// Package client_test checks the JavaScript client of package client with
// esbuild, which the plugin's module does not require: the committed min
// files are what the generator makes, and the source is ES3.
package client_test

import (
	"bytes"
	"os"
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

// sharedLayer is the source of the layer that the shared client adds to the
// client; the handler does not serve it alone.
func sharedLayer(t *testing.T) []byte {
	t.Helper()
	layer, err := os.ReadFile("../../client/simple-comet-shared.js")
	if err != nil {
		t.Fatal(err)
	}
	return layer
}

// The committed min files are what the generator makes from the sources.
func TestMinifiedIsGenerated(t *testing.T) {
	source := script(t, "simple-comet.js")
	for _, tc := range []struct {
		file   string
		name   string
		src    []byte
		minify func(string, []byte) ([]byte, error)
	}{
		{"simple-comet.min.js", "simple-comet.js", source, minify.Minify},
		{"simple-comet-jsonp.min.js", "simple-comet.js", source, minify.MinifyJSONP},
		{"simple-comet-shared.min.js", "simple-comet-shared.js", minify.Shared(source, sharedLayer(t)), minify.Minify},
	} {
		want, err := tc.minify(tc.name, tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if committed := script(t, tc.file); !bytes.Equal(committed, want) {
			t.Errorf("%s is not what the generator makes from the sources; run `go generate ./client/...`\ncommitted: %s\ngenerated: %s", tc.file, committed, want)
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
// The sharing layer runs only where BroadcastChannel and Web Locks are, but
// it keeps to the same syntax, so that esbuild has nothing to lower in it.
func TestSourceIsES3(t *testing.T) {
	for name, src := range map[string][]byte{
		"simple-comet.js":        script(t, "simple-comet.js"),
		"simple-comet-shared.js": sharedLayer(t),
	} {
		res := api.Transform(string(src), api.TransformOptions{
			Loader:           api.LoaderJS,
			MinifyWhitespace: true,
			LegalComments:    api.LegalCommentsNone,
		})
		if len(res.Errors) > 0 {
			t.Fatalf("parsing %s: %v", name, res.Errors[0].Text)
		}
		code := string(res.Code)
		for _, bad := range []string{"=>", "`", "...", "let ", "const ", "class ", "async ", "await ", "yield", " of "} {
			if strings.Contains(code, bad) {
				t.Errorf("%s uses %q, which ES3 browsers lack", name, bad)
			}
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
