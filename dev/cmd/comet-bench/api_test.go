package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestDecodeReplyPlainAndQuoted(t *testing.T) {
	body := `{"since":5,"messages":{"a":[{"content":"hi","id":7,"ts":1}],"b":[]},"last_id":7,"return_code":1,"error_message":""}`
	for name, b := range map[string]string{
		"plain":      body,
		"quote_json": "/*-secure- " + body + " */",
		"newline":    "/*-secure-\n" + body + "\n*/\n",
	} {
		r, err := decodeReply([]byte(b))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if r.LastID != 7 || r.Since != 5 || len(r.Messages["a"]) != 1 || r.Messages["a"][0] != (replyMessage{Content: "hi", ID: 7}) {
			t.Errorf("%s: decoded %+v", name, r)
		}
	}
	if _, err := decodeReply([]byte("<html>502 Bad Gateway</html>")); err == nil {
		t.Error("decoding HTML succeeded")
	}
}

func TestReadPathJoinsWithEscapedBar(t *testing.T) {
	got := readPath([]string{"news", "a b", "ü/x"})
	want := "/channels/news%7Ca%20b%7C%C3%BC%2Fx.json"
	if got != want {
		t.Errorf("readPath = %q, want %q", got, want)
	}
}

func TestCheckBaseRefusesNonLoopback(t *testing.T) {
	ctx := context.Background()
	for _, ok := range []string{
		"http://127.0.0.1:4080", "http://127.0.0.1:4080/", "http://127.9.9.9", "http://[::1]:4080/comet",
		"http://localhost:4080", "https://bench.localhost",
	} {
		if _, err := checkBase(ctx, ok, false); err != nil {
			t.Errorf("checkBase(%q) refused a loopback target: %v", ok, err)
		}
	}
	for _, remote := range []string{"http://192.0.2.1:4080", "http://[2001:db8::1]", "https://10.0.0.1/comet"} {
		_, err := checkBase(ctx, remote, false)
		if err == nil || !strings.Contains(err.Error(), "-allow-remote") {
			t.Errorf("checkBase(%q) = %v, want a refusal that names -allow-remote", remote, err)
		}
		if _, err := checkBase(ctx, remote, true); err != nil {
			t.Errorf("checkBase(%q, allowRemote) = %v", remote, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:4080", "ftp://127.0.0.1", "http://", "http://127.0.0.1/?since=1"} {
		if _, err := checkBase(ctx, bad, true); err == nil {
			t.Errorf("checkBase(%q) accepted a URL that is no base URL", bad)
		}
	}
	got, _ := checkBase(ctx, "http://127.0.0.1:4080/comet/", false)
	if got != "http://127.0.0.1:4080/comet" {
		t.Errorf("checkBase kept the trailing slash: %q", got)
	}
}

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&apiError{Status: 503, Code: -5}, "http_503"},
		{&apiError{Status: 200, Code: -2}, "return_code_-2"},
		{fmt.Errorf("reading: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("%w: x", errBadReply), "bad_reply"},
		{&centrifugoDisconnect{Code: 3001, Reason: "shutdown"}, "disconnect_3001"},
		{errors.New("something"), "other"},
	} {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	name, value, err := parseHeader("x-api-key:  s3cret ")
	if err != nil || name != "X-Api-Key" || value != "s3cret" {
		t.Errorf("parseHeader = %q, %q, %v", name, value, err)
	}
	for _, bad := range []string{"novalue", ": v"} {
		if _, _, err := parseHeader(bad); err == nil {
			t.Errorf("parseHeader(%q) accepted it", bad)
		}
	}
}

func TestEndpointsPublishAuth(t *testing.T) {
	ctx := context.Background()
	_, pub, err := targetConfig{
		Target: "http://127.0.0.1:1", PublishTarget: "http://127.0.0.1:2/admin",
		PublishAuth: "ops:pa:ss", PublishHeaders: []string{"X-Token: t"},
	}.endpoints(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	req, err := pub.newRequest(ctx, http.MethodPost, "/channels.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, ok := req.BasicAuth()
	if !ok || user != "ops" || pass != "pa:ss" || req.Header.Get("X-Token") != "t" {
		t.Errorf("publish request has auth %q/%q/%v, X-Token %q", user, pass, ok, req.Header.Get("X-Token"))
	}
	if req.URL.String() != "http://127.0.0.1:2/admin/channels.json" {
		t.Errorf("publish request URL = %s", req.URL)
	}
	if _, _, err := (targetConfig{Target: "http://127.0.0.1:1", PublishAuth: "nocolon"}).endpoints(ctx, 1, 0); err == nil {
		t.Error("-publish-auth without a colon accepted")
	}
	if _, _, err := (targetConfig{Target: "http://127.0.0.1:1", PublishTarget: "http://192.0.2.1"}).endpoints(ctx, 1, 0); err == nil {
		t.Error("a remote -publish-target accepted without -allow-remote")
	}
}
