// Package token owns the signed tokens (JSON Web Tokens) of a comet route:
// the keys and algorithms taken, reading a token's claims exactly, what a
// token grants and whether that covers an operation, where a request
// carries its token, the cache of tokens that verified, the worker
// goroutines that verify the others off the request's stack, and signing
// tokens (for caddy comet-token). It is the one package of the module that
// imports a JWT library; the jwt block's Caddy configuration is the root
// package's.
//
// Refusals are *hub.Error values (return code -1), so that the handler
// replies with them as they are.
package token
