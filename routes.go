package comet

import (
	"strings"

	"github.com/simple-comet/caddy-comet/jsonp"
)

// resource is what an API path names.
type resource uint8

const (
	resChannels resource = iota + 1 // /channels.json
	resChannel                      // /channels/ID.json (ids joined by '|' for reads)
	resClients                      // /clients.json
	resStatus                       // /status.json
	resScript                       // /simple-comet.js, /simple-comet.min.js, /simple-comet-jsonp.min.js
	resHealth                       // /health.json
	resStream                       // /channels/ID.sse (ids joined by '|')
)

// apiCall is a request's place in the API.
type apiCall struct {
	resource resource
	id       string // channel id(s), for resChannel; script name for resScript
	format   jsonp.Format
	formatOK bool
}

// routeOf maps a path to its API call; ok is false for paths outside the
// API, which go to the next handler.
func routeOf(path string) (call apiCall, ok bool) {
	switch path {
	case "/simple-comet.js", "/simple-comet.min.js", "/simple-comet-jsonp.min.js":
		return apiCall{resource: resScript, id: path[1:], formatOK: true}, true
	}
	if rest, found := strings.CutPrefix(path, "/channels/"); found {
		// An event stream's errors are .json replies.
		if id, ok := strings.CutSuffix(rest, ".sse"); ok {
			return apiCall{resource: resStream, id: id, format: jsonp.JSON, formatOK: true}, true
		}
		id, format, fok := jsonp.SplitFormat(rest)
		return apiCall{resource: resChannel, id: id, format: format, formatOK: fok}, true
	}
	name, rooted := strings.CutPrefix(path, "/")
	if !rooted {
		return apiCall{}, false
	}
	base, format, fok := jsonp.SplitFormat(name)
	stem, _, _ := strings.Cut(name, ".")
	if base != stem {
		// "/channels.xml", "/channels.json.json" and the like: part of the
		// API, in an unknown format.
		format, fok = jsonp.JSON, false
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
