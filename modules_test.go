package comet

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// modulePath is this module's path, the one xcaddy's --with names.
const modulePath = "github.com/simple-comet/caddy-comet"

// userBuild is what a user's build compiles of this module: the plugin
// package, and Caddy with its standard modules and the plugin (cmd/caddy is
// the binary xcaddy builds).
var userBuild = []string{modulePath, modulePath + "/cmd/caddy"}

// userPlatforms are the platforms whose builds count: a dependency of Caddy
// may need a module on one system only (a Windows or macOS API), and
// go.mod must list it for every user.
var userPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64", "freebsd/amd64"}

// goCmd runs the go command in dir, on this module alone even where a go.work
// file would join it to others, and returns its standard output.
func goCmd(t *testing.T, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return out
}

// depModules returns the modules, path to version, that provide the
// packages args lists (with go list -deps), this module excepted.
func depModules(t *testing.T, dir string, env []string, args ...string) map[string]string {
	t.Helper()
	args = append([]string{"list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}"}, args...)
	mods := map[string]string{}
	for line := range strings.Lines(string(goCmd(t, dir, env, args...))) {
		path, version, _ := strings.Cut(strings.TrimSpace(line), " ")
		if path != "" && path != modulePath {
			mods[path] = version
		}
	}
	return mods
}

// A user's build (xcaddy build --with, or any module requiring this one)
// reads this module's go.mod: each module it requires is in the user's
// module graph, and one that this module's tests import is downloaded by
// go mod tidy there. So go.mod requires only what the plugin and Caddy
// need, on some platform: what tests and tools alone need belongs in dev/,
// the development module (docs/contributing.md, "Two modules"). A requirement
// that nothing in a user's build imports fails here if this module imports
// it directly, or if a test's packages need it.
func TestRequiresOnlyWhatUsersBuild(t *testing.T) {
	var gomod struct {
		Require []struct {
			Path     string
			Indirect bool
		}
	}
	if err := json.Unmarshal(goCmd(t, ".", nil, "mod", "edit", "-json"), &gomod); err != nil {
		t.Fatalf("reading go mod edit -json: %v", err)
	}
	needed := map[string]bool{}
	for _, platform := range userPlatforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		for path := range depModules(t, ".", []string{"GOOS=" + goos, "GOARCH=" + goarch}, userBuild...) {
			needed[path] = true
		}
	}
	if len(needed) == 0 {
		t.Fatal("go list found no module in a user's build")
	}
	tested := depModules(t, ".", nil, "-test", "./...")

	var testOnly []string
	for _, r := range gomod.Require {
		_, byTests := tested[r.Path]
		if !needed[r.Path] && (!r.Indirect || byTests) {
			testOnly = append(testOnly, r.Path)
		}
	}
	for _, path := range testOnly {
		why := goCmd(t, ".", nil, "mod", "why", "-m", path)
		t.Errorf("go.mod requires %s, which no package of a user's build imports; move what needs it to dev/, and run go mod tidy:\n%s", path, why)
	}
}

// dev/ tests the plugin with the versions of its dependencies that its own
// go.mod selects. The tests there test what users build only if those are
// the versions this module's go.mod selects: where dev/ needs a newer one,
// raise it here too (go get, in this module).
func TestDevModuleSelectsTheseVersions(t *testing.T) {
	here := depModules(t, ".", nil, "-test", "./...")
	dev := depModules(t, "dev", nil, "-test", "./...")
	var differ []string
	for path, version := range dev {
		if v, ok := here[path]; ok && v != version {
			differ = append(differ, path+": "+v+" here, "+version+" in dev/")
		}
	}
	slices.Sort(differ)
	for _, d := range differ {
		t.Errorf("dev/go.mod selects another version than go.mod: %s", d)
	}
}

// Every module of the repository is tested by the README's test command and
// by .ci/run: go test ./... stops at a nested go.mod, so a module that the
// command does not name with -C runs no test at all.
func TestEveryModuleIsTested(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	command := regexp.MustCompile(`(?m)^go test -race -timeout 5m \./\.\.\.( && go test -C \S+ -race -timeout 5m \./\.\.\.)*`).Find(readme)
	if command == nil {
		t.Fatal("README.md has no line starting 'go test -race -timeout 5m ./...'")
	}
	var modules []string
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" && path != "go.mod" {
			modules = append(modules, filepath.ToSlash(filepath.Dir(path)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(modules, "dev") {
		t.Fatalf("found the modules %q, not dev/: is the test still finding them?", modules)
	}
	if !regexp.MustCompile(`(?m)^go test -race -timeout 5m \./\.\.\.$`).Match(ci) {
		t.Error(".ci/run does not run 'go test -race -timeout 5m ./...' on a line of its own")
	}
	for _, dir := range modules {
		run := "go test -C " + dir + " -race -timeout 5m ./..."
		if !strings.Contains(string(command), " && "+run) {
			t.Errorf("the README's test command %q does not test the module in %s/ with %q", command, dir, run)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(run) + `$`).Match(ci) {
			t.Errorf(".ci/run does not test the module in %s/ with %q on a line of its own", dir, run)
		}
	}
}
