// Command caddy is Caddy with its standard modules and caddy-comet, the same
// binary `xcaddy build --with github.com/simple-comet/caddy-comet` builds.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/simple-comet/caddy-comet"
)

func main() {
	caddycmd.Main()
}
