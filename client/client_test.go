package client

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

// The budgets of the minified clients, gzipped at -9. The original
// Simple-Comet client was 486 bytes, JSON-P alone with one subscription per
// page: the JSON-P client stays under 500, and the one with event streams
// too may take up to 600.
// The client that shares its reads across tabs is for pages that need it
// (docs/client.md, "Sharing across tabs"): its budget only keeps it from
// growing unnoticed.
const (
	maxGzipped       = 600
	maxGzippedJSONP  = 500
	maxGzippedShared = 1100
)

// The checks that need esbuild (the committed min files are the generator's
// output; the source is ES3) are in dev/client, in the development module,
// so that building this module never needs esbuild (docs/contributing.md,
// "Layout").

func gzipped(t *testing.T, b []byte) int {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}

func TestMinifiedSize(t *testing.T) {
	for _, tc := range []struct {
		file   string
		body   []byte
		budget int
	}{
		{"simple-comet.min.js", minified, maxGzipped},
		{"simple-comet-jsonp.min.js", minifiedJSONP, maxGzippedJSONP},
		{"simple-comet-shared.min.js", minifiedShared, maxGzippedShared},
	} {
		n := gzipped(t, tc.body)
		t.Logf("%s: %d bytes, %d gzipped", tc.file, len(tc.body), n)
		if n > tc.budget || (tc.budget == maxGzippedJSONP && n == tc.budget) {
			t.Errorf("%s is %d bytes gzipped, over its budget of %d", tc.file, n, tc.budget)
		}
	}
}

// The JSON-P client is the full one without its event streams: the same
// requests, and nothing an ES3 browser lacks.
func TestJSONPClientHasNoStreams(t *testing.T) {
	if bytes.Contains(minifiedJSONP, []byte("EventSource")) || bytes.Contains(minifiedJSONP, []byte(".sse")) {
		t.Errorf("simple-comet-jsonp.min.js still has the event stream's code: %s", minifiedJSONP)
	}
	for _, want := range []string{"createElement(\"script\")", "_JSONP_", "since="} {
		if !bytes.Contains(minifiedJSONP, []byte(want)) {
			t.Errorf("simple-comet-jsonp.min.js lacks %s", want)
		}
	}
}

func TestScript(t *testing.T) {
	for name, want := range map[string][]byte{
		"simple-comet.js":            source,
		"simple-comet.min.js":        minified,
		"simple-comet-jsonp.min.js":  minifiedJSONP,
		"simple-comet-shared.min.js": minifiedShared,
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
