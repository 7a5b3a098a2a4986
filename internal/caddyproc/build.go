// Package caddyproc runs the project's Caddy (./cmd/caddy) as a separate
// process for tests, the way an operator runs it: built once per test
// binary, started on a Caddyfile, ready once it logs that it serves, stopped
// with an interrupt when the test ends.
//
// A test package that uses it ends its TestMain through RunTests, which
// removes the built binary.
package caddyproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// caddyPackage is what Build builds.
const caddyPackage = "github.com/simple-comet/caddy-comet/cmd/caddy"

var build struct {
	once sync.Once
	dir  string // the temporary directory holding the binary; RunTests removes it
	bin  string
	err  error
}

// Build builds ./cmd/caddy once per test binary, into a temporary directory
// that RunTests removes, and returns the binary's path. It is built without
// -race even under go test -race: it is the server the test talks to, not
// the code under test, and the race detector would slow it several times.
func Build(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "caddyproc-")
		if build.err != nil {
			build.err = fmt.Errorf("building ./cmd/caddy: %w", build.err)
			return
		}
		bin := filepath.Join(build.dir, "caddy")
		out, err := exec.Command("go", "build", "-o", bin, caddyPackage).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// RunTests runs m's tests, then removes the binary Build made, and returns
// the exit code: a TestMain ends with os.Exit(caddyproc.RunTests(m)).
func RunTests(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}
