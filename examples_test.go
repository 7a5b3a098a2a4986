package comet

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Every example listens on loopback only: a site address such as
// http://127.0.0.1:4080 only matches the Host header, and Caddy listens on
// every interface unless the site binds an address, which would put a hub
// with every operation allowed on the network.
func TestExamplesListenOnLoopbackOnly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("examples", "*Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join("examples", "*", "*Caddyfile"))
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc, _, err := adapter.Adapt(body, map[string]any{"filename": file})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var cfg struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Listen []string `json:"listen"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(doc, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(cfg.Apps.HTTP.Servers) == 0 {
			t.Errorf("%s: no servers", file)
		}
		for name, srv := range cfg.Apps.HTTP.Servers {
			for _, addr := range srv.Listen {
				host, _, err := net.SplitHostPort(addr)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
					t.Errorf("%s: server %s listens on %q, not on loopback only (add bind 127.0.0.1)", file, name, addr)
				}
			}
		}
	}
}
