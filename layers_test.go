package comet

import (
	"slices"
	"strings"
	"testing"
)

// Each package keeps to its concern (docs/design.md, "Layers"): the engine
// knows nothing of HTTP or of how replies are encoded, and only the token
// package speaks JWT. The imports, not the comments, say so.
func TestPackagesKeepToTheirConcern(t *testing.T) {
	const module = "github.com/simple-comet/caddy-comet"
	deps := func(pkg string) []string {
		return strings.Fields(string(goCmd(t, ".", nil, "list", "-deps", "-f", "{{.ImportPath}}", pkg)))
	}
	imports := func(pkg string) []string {
		return strings.Fields(string(goCmd(t, ".", nil, "list", "-f", `{{join .Imports " "}}`, pkg)))
	}
	for _, forbidden := range []string{"net/http", module + "/comethttp", module + "/comethttp/wire", module + "/token"} {
		if slices.Contains(deps("./hub"), forbidden) {
			t.Errorf("the hub package depends on %s", forbidden)
		}
	}
	for _, pkg := range []string{".", "./comethttp", "./hub", "./hub/redisstore", "./comethttp/wire"} {
		if slices.Contains(imports(pkg), "github.com/golang-jwt/jwt/v5") {
			t.Errorf("%s imports the JWT library; only the token package may", pkg)
		}
	}
}
