// Package comethttp is the comet API over HTTP (Simple-Comet-Server's REST
// API, docs/api.md): it maps requests onto a hub (package hub), writes the
// replies in JSON and JSON-P (package wire), streams Server-Sent Events,
// refuses cross-site requests for the operations that need it and asks a
// token.Verifier for the operations that need a token.
//
// It owns the protocol and nothing of Caddy: Handler is a plain
// net/http handler that a Go program can mount on any server (see the
// example, and docs/api.md, "Using the hub without Caddy"), and the Caddy
// module (the root package) builds one per route from its configuration.
// What must outlive a handler, its reply counters and the goroutines that
// write event streams, is kept per hub in a HubState.
package comethttp
