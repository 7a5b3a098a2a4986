package client

import (
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/simple-comet/caddy-comet/client/internal/minify"
)

// maxGzipped is the budget of the minified client, gzipped at -9: the
// original Simple-Comet client was 486 bytes, with one subscription per page.
const maxGzipped = 500

func TestMinifiedIsGenerated(t *testing.T) {
	src, err := os.ReadFile("simple-comet.js")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("simple-comet.min.js")
	if err != nil {
		t.Fatal(err)
	}
	want, err := minify.Minify("simple-comet.js", src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, want) {
		t.Fatalf("simple-comet.min.js is not what the generator makes from simple-comet.js; run `go generate ./client/...`\ncommitted: %s\ngenerated: %s", committed, want)
	}
}

func TestMinifiedSize(t *testing.T) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(minified); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("simple-comet.min.js: %d bytes, %d gzipped", len(minified), buf.Len())
	if buf.Len() >= maxGzipped {
		t.Fatalf("simple-comet.min.js is %d bytes gzipped, want under %d", buf.Len(), maxGzipped)
	}
}

// TestSourceIsES3 guards the promise that the client runs in old browsers.
// esbuild cannot target ES3, and it would quietly lower some ES2015 syntax
// (arrow functions, template literals, shorthand properties) for ES5, so the
// source, stripped of comments but not lowered, is checked for the syntax
// that old engines reject.
func TestSourceIsES3(t *testing.T) {
	res := api.Transform(string(source), api.TransformOptions{
		Loader:           api.LoaderJS,
		MinifyWhitespace: true,
		LegalComments:    api.LegalCommentsNone,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("parsing simple-comet.js: %v", res.Errors[0].Text)
	}
	code := string(res.Code)
	for _, bad := range []string{
		"=>", "`", "...", "let ", "const ", "class ", "async ", "await ", "yield",
		" of ", "fetch(", "Promise", "JSON.", "addEventListener", ".forEach(", ".map(", ".bind(",
		"document.head", "currentScript", "Object.keys", "Array.isArray", "trim(",
	} {
		if strings.Contains(code, bad) {
			t.Errorf("simple-comet.js uses %q, which ES3 browsers lack", bad)
		}
	}
}

func TestScript(t *testing.T) {
	for name, want := range map[string][]byte{
		"simple-comet.js":     source,
		"simple-comet.min.js": minified,
	} {
		body, etag, ok := Script(name)
		if !ok {
			t.Fatalf("Script(%q) not found", name)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("Script(%q) returned other bytes than the embedded file", name)
		}
		if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' || strings.HasPrefix(etag, "W/") {
			t.Errorf("Script(%q) ETag = %s, want a strong quoted ETag", name, etag)
		}
		if _, etag2, _ := Script(name); etag2 != etag {
			t.Errorf("Script(%q) ETag changed between calls: %s then %s", name, etag, etag2)
		}
	}
	_, e1, _ := Script("simple-comet.js")
	_, e2, _ := Script("simple-comet.min.js")
	if e1 == e2 {
		t.Errorf("both scripts have ETag %s", e1)
	}
	for _, name := range []string{"", "client.go", "simple-comet", "/simple-comet.js", "SIMPLE-COMET.JS", "../simple-comet.js"} {
		if body, etag, ok := Script(name); ok || body != nil || etag != "" {
			t.Errorf("Script(%q) = %d bytes, %q, %v; want nothing", name, len(body), etag, ok)
		}
	}
}
