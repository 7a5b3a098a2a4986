// Command gen writes the minified client scripts from the readable ones: the
// one with both transports, the JSON-P one, and the one that shares its
// reads across tabs (the client followed by simple-comet-shared.js). It is
// run by `go generate ./client/...` (see client/client.go), from the client
// directory:
//
//	go run -C ../dev ./client/gen ../client/simple-comet.js ../client/simple-comet-shared.js ../client/simple-comet.min.js ../client/simple-comet-jsonp.min.js ../client/simple-comet-shared.min.js
package main

import (
	"fmt"
	"os"

	"github.com/simple-comet/caddy-comet/dev/client/minify"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: gen SOURCE.js SHARED.js OUTPUT.min.js OUTPUT-JSONP.min.js OUTPUT-SHARED.min.js")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(in, inShared, out, outJSONP, outShared string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	layer, err := os.ReadFile(inShared)
	if err != nil {
		return err
	}
	for _, target := range []struct {
		path   string
		name   string
		src    []byte
		minify func(string, []byte) ([]byte, error)
	}{
		{out, in, src, minify.Minify},
		{outJSONP, in, src, minify.MinifyJSONP},
		{outShared, inShared, minify.Shared(src, layer), minify.Minify},
	} {
		min, err := target.minify(target.name, target.src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target.path, min, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", target.path, err)
		}
	}
	return nil
}
