package comethttp

import (
	"net/http"
	"strings"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
)

// resource is what an API path names.
type resource uint8

const (
	resChannels resource = iota + 1 // /channels.json
	resChannel                      // /channels/ID.json (ids joined by '|' for reads)
	resClients                      // /clients.json
	resStatus                       // /status.json
	resScript                       // /simple-comet.js, /simple-comet.min.js, /simple-comet-jsonp.min.js, /simple-comet-shared.min.js
	resHealth                       // /health.json
	resStream                       // /channels/ID.sse (ids joined by '|')
)

// apiCall is a request's place in the API, decided once per request (route)
// for every step that serves it: the fast path of reads and streams, the
// token check and the rest of the API.
type apiCall struct {
	resource resource
	id       string // channel id(s), for resChannel; script name for resScript
	format   wire.Format
	formatOK bool
	// op is the operation the request's method performs on the resource,
	// or empty when the resource does not answer the method; allow then
	// lists the methods it answers, for the 405's Allow header.
	op, allow string
}

// route maps a request's path and method to its API call, into call;
// false for paths outside the API, which the caller of ServeAPI answers.
// It fills call in place rather than return it: an apiCall is returned on
// the stack, in ServeAPI's frame, which a held read keeps (docs/design.md,
// "The stack budget of a held read").
func route(path, method string, call *apiCall) bool {
	var ok bool
	*call, ok = routeOf(path)
	if ok {
		call.op, call.allow = operation(call.resource, method)
	}
	return ok
}

// routeOf maps a path to its API call; ok is false for paths outside the
// API, which the caller of ServeAPI answers.
func routeOf(path string) (call apiCall, ok bool) {
	switch path {
	case "/simple-comet.js", "/simple-comet.min.js", "/simple-comet-jsonp.min.js", "/simple-comet-shared.min.js":
		return apiCall{resource: resScript, id: path[1:], formatOK: true}, true
	}
	if rest, found := strings.CutPrefix(path, "/channels/"); found {
		// An event stream's errors are .json replies.
		if id, ok := strings.CutSuffix(rest, ".sse"); ok {
			return apiCall{resource: resStream, id: id, format: wire.JSON, formatOK: true}, true
		}
		id, format, fok := wire.SplitFormat(rest)
		return apiCall{resource: resChannel, id: id, format: format, formatOK: fok}, true
	}
	name, rooted := strings.CutPrefix(path, "/")
	if !rooted {
		return apiCall{}, false
	}
	base, format, fok := wire.SplitFormat(name)
	stem, _, _ := strings.Cut(name, ".")
	if base != stem {
		// "/channels.xml", "/channels.json.json" and the like: part of the
		// API, in an unknown format.
		format, fok = wire.JSON, false
	}
	switch stem {
	case "channels":
		call.resource = resChannels
	case "clients":
		call.resource = resClients
	case "status":
		call.resource = resStatus
	case "health":
		call.resource = resHealth
	default:
		return apiCall{}, false
	}
	call.format, call.formatOK = format, fok
	return call, true
}

// resourceMethods are the methods each resource answers, and the operation
// each performs; Allow lists them, in the order of the 405's Allow header.
var resourceMethods = map[resource]struct {
	ops   map[string]string
	allow string
}{
	resChannels: {map[string]string{http.MethodPost: OpManage}, "POST"},
	resChannel: {map[string]string{http.MethodGet: OpSubscribe, http.MethodPost: OpPublish, http.MethodDelete: OpManage},
		"GET, POST, DELETE"},
	resClients: {map[string]string{http.MethodPost: OpManage}, "POST"},
	resStatus:  {map[string]string{http.MethodGet: OpStatus}, "GET"},
	resScript:  {map[string]string{http.MethodGet: OpSubscribe, http.MethodHead: OpSubscribe}, "GET, HEAD"},
	resHealth:  {map[string]string{http.MethodGet: opHealth, http.MethodHead: opHealth}, "GET, HEAD"},
	resStream:  {map[string]string{http.MethodGet: OpSubscribe}, "GET"},
}

// opHealth is the health probe's operation. It is not one of the operations
// a route allows: every route serves it, since it reveals nothing, and a
// load balancer probes the routes it sends traffic to, public or not.
const opHealth = "health"

// operation returns the operation a method on a resource performs, or "" and
// the methods the resource allows.
func operation(res resource, method string) (op, allow string) {
	m := resourceMethods[res]
	if op := m.ops[method]; op != "" {
		return op, ""
	}
	return "", m.allow
}
