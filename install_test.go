package comet

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// deploymentDoc is where building, the container and the Go runtime's
// settings are documented.
const deploymentDoc = "docs/deployment.md"

// The xcaddy command in the "Building" section of docs/deployment.md is the
// one that scripts/xcaddy-build.sh runs. .ci/run builds and runs a binary with that
// script, and the Dockerfile builds its image with it, so a change to one
// of them that leaves the others behind fails here, not in a user's hands.
// The command builds go.mod's Caddy, and the docs name go.mod's Go.
func TestDocsBuildIsTheScriptCIRuns(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	script := read("scripts/xcaddy-build.sh")
	deployment := read(deploymentDoc)
	gomod := read("go.mod")
	ci := read(".ci/run")
	dockerfile := read("Dockerfile")

	m := regexp.MustCompile(`(?m)^"\$xcaddy" (build .*) --output "\$out"$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal(`scripts/xcaddy-build.sh has no line '"$xcaddy" build ... --output "$out"'`)
	}
	command := "xcaddy " + m[1]

	_, building, ok := strings.Cut(deployment, "\n## Building\n")
	if !ok {
		t.Fatal(deploymentDoc + " has no ## Building section")
	}
	building, _, _ = strings.Cut(building, "\n## ")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(command) + `$`).MatchString(building) {
		t.Errorf("%s's Building section does not give the script's command as a line of its own:\n%s", deploymentDoc, command)
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
		t.Errorf("%s's Building section does not say that it needs Go %v or newer", deploymentDoc, goLine)
	}

	const install = "go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5"
	for name, text := range map[string]string{".ci/run": ci, "Dockerfile": dockerfile, deploymentDoc: building, "scripts/xcaddy-build.sh": script} {
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

// docs/deployment.md recommends GODEBUG=adaptivestackstart=0 for hubs that
// hold many reads and says that the Dockerfile sets it in the image it runs;
// a Dockerfile that stops doing so fails here.
func TestDockerfileSetsTheRecommendedGODEBUG(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	deployment, err := os.ReadFile(deploymentDoc)
	if err != nil {
		t.Fatal(err)
	}
	const setting = "GODEBUG=adaptivestackstart=0"
	if !strings.Contains(string(deployment), "[Dockerfile](../Dockerfile) sets it") {
		t.Fatal(deploymentDoc + " no longer says that the Dockerfile sets " + setting + "; update this test with it")
	}
	// The setting must be in the runtime stage, the one the image runs.
	_, runtime, ok := strings.Cut(string(dockerfile), "\nFROM caddy:")
	if !ok {
		t.Fatal("the Dockerfile has no runtime stage FROM caddy:...")
	}
	if !regexp.MustCompile(`(?m)^ENV ` + regexp.QuoteMeta(setting) + `$`).MatchString(runtime) {
		t.Errorf("the Dockerfile's runtime stage does not set ENV %s", setting)
	}
}

// compose.yaml runs examples/cluster as it is: each service mounts one of
// its Caddyfiles, every service but the balancer joins the balancer's
// network namespace (so the files' 127.0.0.1 addresses reach each other),
// and the one published port is the balancer's, which binds every address
// of that namespace when COMET_LB_BIND says so. A change of port or file in
// the example that leaves compose.yaml behind fails here.
func TestComposeRunsTheClusterExample(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)

	mounts := map[string]string{} // service -> Caddyfile
	var service string
	shared := 0
	for _, line := range strings.Split(compose, "\n") {
		if m := regexp.MustCompile(`^  (\w+):$`).FindStringSubmatch(line); m != nil {
			service = m[1]
		}
		if m := regexp.MustCompile(`^      - \./(examples/cluster/\w+\.Caddyfile):/etc/caddy/Caddyfile:ro$`).FindStringSubmatch(line); m != nil {
			mounts[service] = m[1]
		}
		if strings.TrimSpace(line) == "network_mode: service:lb" {
			shared++
		}
	}
	files, err := filepath.Glob("examples/cluster/*.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	var mounted []string
	for _, f := range mounts {
		mounted = append(mounted, f)
	}
	slices.Sort(files)
	slices.Sort(mounted)
	if !slices.Equal(files, mounted) || mounts["lb"] != "examples/cluster/lb.Caddyfile" {
		t.Errorf("compose.yaml mounts %v, examples/cluster has %v (the balancer's as lb)", mounts, files)
	}
	if want := len(files); shared != want { // the nodes (every file but lb's) and redis
		t.Errorf("%d services join the balancer's network namespace, want %d", shared, want)
	}

	ports := regexp.MustCompile(`(?m)^      - "127\.0\.0\.1:(\d+):(\d+)"$`).FindAllStringSubmatch(compose, -1)
	if len(ports) != 1 || ports[0][1] != ports[0][2] {
		t.Fatalf("compose.yaml publishes %v, want one port, the same on the host's loopback", ports)
	}
	if !strings.Contains(compose, "COMET_LB_BIND: 0.0.0.0") {
		t.Fatal("compose.yaml does not set COMET_LB_BIND: 0.0.0.0")
	}
	t.Setenv("COMET_LB_BIND", "0.0.0.0")
	cfg := adaptExample(t, "examples/cluster/lb.Caddyfile")
	var listen []string
	for _, srv := range cfg.Apps.HTTP.Servers {
		listen = append(listen, srv.Listen...)
	}
	if want := "0.0.0.0:" + ports[0][2]; !slices.Equal(listen, []string{want}) {
		t.Errorf("with COMET_LB_BIND=0.0.0.0 the balancer listens on %v, want %s, the port compose.yaml publishes", listen, want)
	}
}
