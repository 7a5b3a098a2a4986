// Package integration holds the tests that run a real Caddy, in this process,
// with the comet module: the HTTP API, reloads, the browser client and Redis.
//
// caddytest fixes Caddy's admin API on localhost:2999, so every such test
// lives in this one package and none runs in parallel.
package integration
