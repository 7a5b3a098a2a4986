package comet

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The xcaddy command in the README's "Building" section is the one that
// scripts/xcaddy-build.sh runs. .ci/run builds and runs a binary with that
// script, and the Dockerfile builds its image with it, so a change to one
// of them that leaves the others behind fails here, not in a user's hands.
// The command builds go.mod's Caddy, and the README names go.mod's Go.
func TestReadmeBuildIsTheScriptCIRuns(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	script := read("scripts/xcaddy-build.sh")
	readme := read("README.md")
	gomod := read("go.mod")
	ci := read(".ci/run")
	dockerfile := read("Dockerfile")

	m := regexp.MustCompile(`(?m)^"\$xcaddy" (build .*) --output "\$out"$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal(`scripts/xcaddy-build.sh has no line '"$xcaddy" build ... --output "$out"'`)
	}
	command := "xcaddy " + m[1]

	_, building, ok := strings.Cut(readme, "\n## Building\n")
	if !ok {
		t.Fatal("README.md has no ## Building section")
	}
	building, _, _ = strings.Cut(building, "\n## ")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(command) + `$`).MatchString(building) {
		t.Errorf("README's Building section does not give the script's command as a line of its own:\n%s", command)
	}

	caddy := regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/caddy/v2 (v\S+)`).FindStringSubmatch(gomod)
	if caddy == nil {
		t.Fatal("go.mod does not require github.com/caddyserver/caddy/v2")
	}
	if !strings.HasPrefix(m[1], "build "+caddy[1]+" ") {
		t.Errorf("the script builds %q, not go.mod's Caddy %s", m[1], caddy[1])
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if goLine == nil || !strings.Contains(building, "Go "+goLine[1]+" or newer") {
		t.Errorf("README's Building section does not say that it needs Go %v or newer", goLine)
	}

	const install = "go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5"
	for name, text := range map[string]string{".ci/run": ci, "Dockerfile": dockerfile, "README.md": building, "scripts/xcaddy-build.sh": script} {
		if !strings.Contains(text, install) {
			t.Errorf("%s does not install xcaddy with %q", name, install)
		}
	}
	if !regexp.MustCompile(`(?m)^XCADDY=\S+ scripts/xcaddy-build\.sh `).MatchString(ci) {
		t.Error(".ci/run does not run scripts/xcaddy-build.sh")
	}
	if !regexp.MustCompile(`(?m)^RUN scripts/xcaddy-build\.sh `).MatchString(dockerfile) {
		t.Error("the Dockerfile does not build with scripts/xcaddy-build.sh")
	}
}
