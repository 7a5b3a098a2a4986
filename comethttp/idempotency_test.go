package comethttp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/simple-comet/caddy-comet/hub"
)

type publishReply struct {
	MessageID    int64  `json:"message_id"`
	Replayed     bool   `json:"replayed"`
	ReturnCode   int    `json:"return_code"`
	ErrorMessage string `json:"error_message"`
}

// publishWith publishes content to channel a, with the key in the
// Idempotency-Key header when header is not nil and in the form otherwise.
func publishWith(t *testing.T, h *Handler, form url.Values, header []string) (publishReply, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/channels/a.json", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, v := range header {
		r.Header.Add("Idempotency-Key", v)
	}
	rec, _ := serve(t, h, r)
	var reply publishReply
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatalf("reply %q: %v", rec.Body, err)
	}
	return reply, rec
}

// A publish carries its key in the Idempotency-Key header or the
// idempotency_key field; a retry gets the first message_id, return_code 1,
// and says it was a replay.
func TestPublishIdempotencyKeyHTTP(t *testing.T) {
	h := testHandler(t, hub.Config{})
	if err := h.hub.RegisterChannel(t.Context(), "a", false, 0); err != nil {
		t.Fatal(err)
	}
	content := url.Values{"content": {"hello"}}

	first, rec := publishWith(t, h, content, []string{"order-17"})
	if first.ReturnCode != hub.CodeOK || first.Replayed || rec.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("first publish: %+v %v", first, rec.Header())
	}
	if strings.Contains(rec.Body.String(), "replayed") {
		t.Errorf("a first publish's reply %q differs from the original's", rec.Body)
	}
	viaHeader, rec := publishWith(t, h, content, []string{"order-17"})
	if viaHeader != (publishReply{MessageID: first.MessageID, Replayed: true, ReturnCode: hub.CodeOK}) ||
		rec.Header().Get("Idempotent-Replayed") != "true" || rec.Code != http.StatusOK {
		t.Errorf("retry by header: %d %+v %v", rec.Code, viaHeader, rec.Header())
	}
	viaField, _ := publishWith(t, h, url.Values{"content": {"hello"}, "idempotency_key": {"order-17"}}, nil)
	if viaField.MessageID != first.MessageID || !viaField.Replayed {
		t.Errorf("retry by field: %+v, want a replay of %d", viaField, first.MessageID)
	}
	both, _ := publishWith(t, h, url.Values{"content": {"hello"}, "idempotency_key": {"order-17"}}, []string{"order-17"})
	if both.MessageID != first.MessageID || !both.Replayed {
		t.Errorf("retry with the same key both ways: %+v", both)
	}
	other, _ := publishWith(t, h, content, []string{"order-18"})
	if other.Replayed || other.MessageID <= first.MessageID {
		t.Errorf("another key: %+v", other)
	}
}

// Bad keys get -1 with a message that says what is wrong, and publish
// nothing.
func TestPublishIdempotencyKeyRefused(t *testing.T) {
	h := testHandler(t, hub.Config{})
	if err := h.hub.RegisterChannel(t.Context(), "a", false, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		form   url.Values
		header []string
		msg    string
	}{
		{"empty header", url.Values{}, []string{""}, "Invalid idempotency key: empty"},
		{"empty field", url.Values{"idempotency_key": {""}}, nil, "Invalid idempotency key: empty"},
		{"too long", url.Values{}, []string{strings.Repeat("k", 257)}, "Invalid idempotency key: longer than 256 bytes"},
		{"control character", url.Values{"idempotency_key": {"a\tb"}}, nil, "Invalid idempotency key: contains a control character"},
		{"header and field differ", url.Values{"idempotency_key": {"x"}}, []string{"y"},
			"Invalid idempotency key: the Idempotency-Key header and the idempotency_key field differ"},
		{"two headers", url.Values{}, []string{"x", "y"}, "Invalid idempotency key: given more than once"},
		{"two fields", url.Values{"idempotency_key": {"x", "x"}}, nil, "Invalid idempotency key: given more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("content", "must not be published")
			reply, rec := publishWith(t, h, tt.form, tt.header)
			if rec.Code != http.StatusOK || reply.ReturnCode != hub.CodeBadRequest || reply.ErrorMessage != tt.msg {
				t.Errorf("%d %+v, want 200 with -1 %q", rec.Code, reply, tt.msg)
			}
		})
	}
	// The longest key is fine.
	ok, _ := publishWith(t, h, url.Values{"content": {"x"}}, []string{strings.Repeat("k", 256)})
	if ok.ReturnCode != hub.CodeOK {
		t.Errorf("a 256-byte key: %+v", ok)
	}
	res, err := h.hub.Read(t.Context(), hub.ReadRequest{Channels: "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Channels[0].Messages); n != 1 {
		t.Errorf("%d messages stored, want only the one with a valid key", n)
	}
}
