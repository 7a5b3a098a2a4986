// Command gen writes the minified client scripts from the readable one: the
// one with both transports and the JSON-P one. It is run by
// `go generate ./client/...` (see client/client.go), from the client
// directory:
//
//	go run -C ../dev ./client/gen ../client/simple-comet.js ../client/simple-comet.min.js ../client/simple-comet-jsonp.min.js
package main

import (
	"fmt"
	"os"

	"github.com/simple-comet/caddy-comet/dev/client/minify"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gen SOURCE.js OUTPUT.min.js OUTPUT-JSONP.min.js")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(in, out, outJSONP string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	for _, target := range []struct {
		path   string
		minify func(string, []byte) ([]byte, error)
	}{
		{out, minify.Minify},
		{outJSONP, minify.MinifyJSONP},
	} {
		min, err := target.minify(in, src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target.path, min, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", target.path, err)
		}
	}
	return nil
}
