#!/bin/sh
# Builds Caddy with caddy-comet from this clone, using the xcaddy command in
# the "Building" section of docs/deployment.md. .ci/run and the Dockerfile run this
# script, so CI checks the command that the docs give and the image uses.
#
#   scripts/xcaddy-build.sh [OUTPUT]     the binary; default ./caddy
#
# Needs Go 1.26 (go.mod's go line) and xcaddy v0.4.5 on PATH, in
# go env GOBIN (or GOPATH/bin), or named by XCADDY:
#   go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
#
# xcaddy builds a temporary main module that requires Caddy and each --with
# module, and runs `go get` on them. "=./" replaces this module with the
# clone. The version before it must be one that `go get` never looks up,
# because the path is not published yet: v0.0.0-00010101000000-000000000000
# is the version Go itself writes for a module that only a replace provides.
# `caddy list-modules --versions` shows that version for this build.
set -eu

out=${1:-caddy}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")/.."

# The binary gets the Caddy the tests ran against: go.mod's.
caddy=$(awk '$1 == "github.com/caddyserver/caddy/v2" { print $2 }' go.mod)
if [ "$caddy" != v2.11.9 ]; then
	echo "go.mod requires Caddy $caddy, the build below names v2.11.9: change both it and docs/deployment.md" >&2
	exit 1
fi

gobin=$(go env GOBIN)
xcaddy=${XCADDY:-$(command -v xcaddy || echo "${gobin:-$(go env GOPATH)/bin}/xcaddy")}
if [ ! -x "$xcaddy" ]; then
	echo "xcaddy not found; install it with: go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5" >&2
	exit 1
fi
echo "xcaddy $("$xcaddy" version)"

# The documented command, word for word, with the output path added.
"$xcaddy" build v2.11.9 --with github.com/simple-comet/caddy-comet@v0.0.0-00010101000000-000000000000=./ --output "$out"
