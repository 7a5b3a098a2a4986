// Command gen writes the minified client script from the readable one. It is
// run by `go generate ./client/...` (see client.go) in the client directory:
//
//	go run ./internal/gen simple-comet.js simple-comet.min.js
package main

import (
	"fmt"
	"os"

	"github.com/simple-comet/caddy-comet/client/internal/minify"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gen SOURCE.js OUTPUT.min.js")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	min, err := minify.Minify(in, src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, min, 0o644); err != nil {
		return fmt.Errorf("writing the minified client: %w", err)
	}
	return nil
}
