package comethttp

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

// Errors counts error replies by their negative return code, and
// countError ignores codes that are not errors, or unknown, without
// panicking.
func TestHubStateCountsErrors(t *testing.T) {
	h := testHandler(t, hub.Config{})
	serve(t, h, httptest.NewRequest(http.MethodGet, "/channels.xml", nil)) // -1 Unknown output format
	h.state.countError(hub.CodeOK)                                         // not an error: ignored
	h.state.countError(-99)                                                // unknown: ignored, no panic
	if got := h.state.Errors(hub.CodeBadRequest); got != 1 {
		t.Errorf("errors with code -1 after one: %d", got)
	}
	for _, code := range []int{hub.CodeOK, -99, hub.CodeOverloaded} {
		if got := h.state.Errors(code); got != 0 {
			t.Errorf("errors with code %d: %d, want 0", code, got)
		}
	}
	if got := h.state.Replies(); got != 1 {
		t.Errorf("replies after one: %d", got)
	}
}
