// Command caddy-bench is Caddy with its standard modules, caddy-comet and
// the least hub (http.handlers.least_hub, package leasthub): one binary that
// serves both, for the side by side of scripts/bench-peers.sh. It is for
// benchmarks only; deploy ./cmd/caddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/simple-comet/caddy-comet"
	_ "github.com/simple-comet/caddy-comet/dev/leasthub"
)

func main() {
	caddycmd.Main()
}
