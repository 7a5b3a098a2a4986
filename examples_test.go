package comet

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// exampleFiles are the Caddyfiles under examples/.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("examples", "*Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join("examples", "*", "*Caddyfile"))
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	return files
}

// exampleConfig is what the example tests read of an adapted example.
type exampleConfig struct {
	Admin struct {
		Listen string `json:"listen"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Listen []string `json:"listen"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

// adaptExample adapts an example Caddyfile, failing the test on an error.
func adaptExample(t *testing.T, file string) exampleConfig {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": file})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var cfg exampleConfig
	if err := json.Unmarshal(doc, &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

// Every example has its own site and admin addresses, so that any of them
// can run beside any other (the chat beside the cluster, say).
func TestExamplesUseTheirOwnPorts(t *testing.T) {
	owner := map[string]string{} // address -> the example using it
	for _, file := range exampleFiles(t) {
		cfg := adaptExample(t, file)
		admin := cfg.Admin.Listen
		if admin == "" {
			admin = "localhost:2019" // Caddy's default
		}
		addrs := []string{"admin " + admin}
		for _, srv := range cfg.Apps.HTTP.Servers {
			for _, l := range srv.Listen {
				addrs = append(addrs, "site "+l)
			}
		}
		for _, a := range addrs {
			if other, taken := owner[a]; taken {
				t.Errorf("%s and %s both use %s", other, file, a)
			}
			owner[a] = file
		}
	}
}

// Every example listens on loopback only: a site address such as
// http://127.0.0.1:4080 only matches the Host header, and Caddy listens on
// every interface unless the site binds an address, which would put a hub
// with every operation allowed on the network.
func TestExamplesListenOnLoopbackOnly(t *testing.T) {
	for _, file := range exampleFiles(t) {
		cfg := adaptExample(t, file)
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
