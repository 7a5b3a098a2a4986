package comet

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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
	var cfg exampleConfig
	if err := json.Unmarshal(adaptExampleJSON(t, file), &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

// adaptExampleJSON adapts an example Caddyfile to Caddy's JSON, in the
// environment its opening comment tells the user to set.
func adaptExampleJSON(t *testing.T, file string) []byte {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("COMET_HTTPS_STORAGE") == "" {
		t.Setenv("COMET_HTTPS_STORAGE", t.TempDir()) // examples/https/local.Caddyfile
	}
	doc, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(body, map[string]any{"filename": file})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return doc
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
// with every operation allowed on the network. The public site of
// examples/https is the exception it must be: there, every comet handler
// serves reads alone or sits behind a remote_ip (or client_ip) matcher.
func TestExamplesListenOnLoopbackOnly(t *testing.T) {
	for _, file := range exampleFiles(t) {
		cfg := adaptExample(t, file)
		if len(cfg.Apps.HTTP.Servers) == 0 {
			t.Errorf("%s: no servers", file)
		}
		var full struct {
			Apps struct {
				HTTP struct {
					Servers map[string]json.RawMessage `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(adaptExampleJSON(t, file), &full); err != nil {
			t.Fatal(err)
		}
		for name, srv := range cfg.Apps.HTTP.Servers {
			for _, addr := range srv.Listen {
				host, _, err := net.SplitHostPort(addr)
				if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
					continue
				}
				if file != publicExample {
					t.Errorf("%s: server %s listens on %q, not on loopback only (add bind 127.0.0.1)", file, name, addr)
					continue
				}
				var routes any
				if err := json.Unmarshal(full.Apps.HTTP.Servers[name], &routes); err != nil {
					t.Fatal(err)
				}
				for _, open := range openCometHandlers(routes, false) {
					t.Errorf("%s: server %s listens on %q and its comet handler allowing %v has no remote_ip matcher", file, name, addr, open)
				}
			}
		}
	}
}

// publicExample is the example of a public site, on every interface.
const publicExample = "examples/https/Caddyfile"

// openCometHandlers walks adapted JSON and returns the allow lists of the
// comet handlers that serve more than reads without a remote_ip or
// client_ip matcher on a route around them (an allow list absent is every
// operation).
func openCometHandlers(v any, guarded bool) [][]any {
	var open [][]any
	switch v := v.(type) {
	case map[string]any:
		if matchers, ok := v["match"].([]any); ok {
			for _, m := range matchers {
				m, _ := m.(map[string]any)
				if m["remote_ip"] != nil || m["client_ip"] != nil {
					guarded = true
				}
			}
		}
		if v["handler"] == "comet" && !guarded {
			allow, _ := v["allow"].([]any)
			if len(allow) != 1 || allow[0] != "subscribe" {
				open = append(open, allow)
			}
		}
		for _, child := range v {
			open = append(open, openCometHandlers(child, guarded)...)
		}
	case []any:
		for _, child := range v {
			open = append(open, openCometHandlers(child, guarded)...)
		}
	}
	return open
}

// examplesList is where the examples' addresses are listed.
const examplesList = "examples/README.md"

// Every example is in the list of examples/README.md with the addresses it
// listens on and its admin address, and no example takes the integration
// tests' ports, which the list names too.
func TestExamplesPortList(t *testing.T) {
	doc, err := os.ReadFile(examplesList)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // Caddyfile -> its row
	for line := range strings.Lines(string(doc)) {
		if m := regexp.MustCompile("^\\| `(examples/[^`]*Caddyfile)` \\|").FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	files := exampleFiles(t)
	for _, file := range files {
		row, ok := rows[file]
		if !ok {
			t.Errorf("%s is not in the list of %s", file, examplesList)
			continue
		}
		cfg := adaptExample(t, file)
		cells := strings.Split(row, "|") // "", file, what, site, admin, ""
		if len(cells) != 6 {
			t.Errorf("%s: the row of %s has %d cells, want 4", examplesList, file, len(cells)-2)
			continue
		}
		var listens []string
		for _, srv := range cfg.Apps.HTTP.Servers {
			for _, l := range srv.Listen {
				listens = append(listens, "`"+l+"`")
				if _, port, _ := net.SplitHostPort(l); slices.Contains([]string{"9080", "9081", "9443"}, port) {
					t.Errorf("%s listens on %s, a port of the integration tests", file, l)
				}
			}
		}
		for _, l := range listens {
			if !strings.Contains(cells[3], l) {
				t.Errorf("%s: %s listens on %s, which its row's site column (%s) does not say", examplesList, file, l, strings.TrimSpace(cells[3]))
			}
		}
		admin := cfg.Admin.Listen
		if admin == "" {
			admin = "localhost:2019" // Caddy's default
		}
		if strings.TrimSpace(cells[4]) != "`"+admin+"`" {
			t.Errorf("%s: %s has the admin address %s, its row says %s", examplesList, file, admin, strings.TrimSpace(cells[4]))
		}
		if admin == "localhost:2999" {
			t.Errorf("%s uses the admin address of the integration tests", file)
		}
	}
	for file := range rows {
		if !slices.Contains(files, file) {
			t.Errorf("%s lists %s, which does not exist", examplesList, file)
		}
	}
}
