// Package client holds the JavaScript client of caddy-comet, embedded so that
// the comet handler can serve it at /simple-comet.js (readable),
// /simple-comet.min.js (what pages should load: event streams where the
// browser has them, JSON-P elsewhere), /simple-comet-jsonp.min.js (JSON-P
// alone, the smallest) and /simple-comet-shared.min.js (the first, sharing
// one connection per subscription across a browser's tabs: docs/client.md,
// "Sharing across tabs").
//
// The .min.js files are generated from simple-comet.js (and, for the shared
// one, simple-comet-shared.js after it); never edit them by hand. After
// changing the sources, run:
//
//	go generate ./client/...
package client

// The generator needs esbuild, so it lives in the development module (dev/,
// see docs/contributing.md, "Layout"), and -C runs it from there.
//go:generate go run -C ../dev ./client/gen ../client/simple-comet.js ../client/simple-comet-shared.js ../client/simple-comet.min.js ../client/simple-comet-jsonp.min.js ../client/simple-comet-shared.min.js

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
)

var (
	//go:embed simple-comet.js
	source []byte

	//go:embed simple-comet.min.js
	minified []byte

	//go:embed simple-comet-jsonp.min.js
	minifiedJSONP []byte

	//go:embed simple-comet-shared.min.js
	minifiedShared []byte
)

// script is one embedded file with its ETag, computed once at start-up.
type script struct {
	body []byte
	etag string
}

var scripts = map[string]script{
	"simple-comet.js":            newScript(source),
	"simple-comet.min.js":        newScript(minified),
	"simple-comet-jsonp.min.js":  newScript(minifiedJSONP),
	"simple-comet-shared.min.js": newScript(minifiedShared),
}

func newScript(body []byte) script {
	sum := sha256.Sum256(body)
	// A strong validator: the bytes are fixed for the life of the binary.
	return script{body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
}

// ContentType is the media type to serve the scripts with.
const ContentType = "application/javascript; charset=utf-8"

// Script returns the embedded file called name ("simple-comet.js",
// "simple-comet.min.js", "simple-comet-jsonp.min.js" or
// "simple-comet-shared.min.js") and its strong, quoted ETag. ok is false for
// any other name. The returned slice is shared: callers must not modify it.
func Script(name string) (body []byte, etag string, ok bool) {
	s, ok := scripts[name]
	return s.body, s.etag, ok
}
