// Package minify turns the readable client script into the one pages load.
// The generator (dev/client/gen) and the tests in dev/client both call
// Minify, so the test that checks the committed min files runs exactly what
// `go generate ./client/...` runs.
package minify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// Minify returns src minified by esbuild: whitespace, syntax and local
// identifiers, for ES5 (the oldest target esbuild knows; the source itself is
// ES3). name is the source's file name, used in error messages. Warnings fail
// too, because a warning about the client is a bug in the client.
func Minify(name string, src []byte) ([]byte, error) {
	return transform(name, src, nil)
}

// MinifyJSONP is Minify for browsers that are to use JSON-P alone: with
// window.EventSource taken as absent, the event stream's code is dead and
// goes, which keeps that client as small as the JSON-P one ever was.
func MinifyJSONP(name string, src []byte) ([]byte, error) {
	return transform(name, src, map[string]string{"window.EventSource": "false"})
}

// Shared returns the source of the client that shares its reads across tabs:
// the client, then the layer (simple-comet-shared.js) that wraps its
// subscribe. Both gen and the tests minify it with Minify.
func Shared(client, layer []byte) []byte {
	src := make([]byte, 0, len(client)+1+len(layer))
	src = append(src, client...)
	src = append(src, '\n')
	return append(src, layer...)
}

func transform(name string, src []byte, define map[string]string) ([]byte, error) {
	res := api.Transform(string(src), api.TransformOptions{
		Loader:            api.LoaderJS,
		Sourcefile:        name,
		Target:            api.ES5,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Charset:           api.CharsetASCII,
		LegalComments:     api.LegalCommentsNone,
		LogLevel:          api.LogLevelSilent,
		Define:            define,
	})
	if msgs := append(res.Errors, res.Warnings...); len(msgs) > 0 {
		return nil, fmt.Errorf("minifying %s: %w", name, describe(msgs))
	}
	return res.Code, nil
}

func describe(msgs []api.Message) error {
	lines := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Location != nil {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", m.Location.File, m.Location.Line, m.Location.Column, m.Text))
		} else {
			lines = append(lines, m.Text)
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}
