package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A server whose write timeout would cut off the replies of held reads gets
// a warning when the configuration loads, naming the server and both
// values; a server that lets them through gets none.
func TestShortWriteTimeoutWarns(t *testing.T) {
	tests := []struct {
		name, timeouts string
		want           map[string]any // fields of the warning; nil: no warning
	}{
		{"write shorter", "write 10s", map[string]any{"write_timeout": "10s", "http_timeout": "30s"}},
		{"write within the margin", "write 32s", map[string]any{"write_timeout": "32s", "http_timeout": "30s"}},
		{"write_idle with a minimum rate", "write_idle 20s 100", map[string]any{"write_idle_timeout": "20s", "http_timeout": "30s"}},
		{"write longer", "write 40s", nil},
		{"write_idle without a rate", "write_idle 5s", nil},
		{"none", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			startCaddyWith(t, fmt.Sprintf(`	log {
		output file %q
		format json
		level WARN
	}
	servers {
		timeouts {
			%s
		}
	}
`, logFile, tt.timeouts), `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	comet {
		hub timeouts
		http_timeout 30s
	}
}
`)
			warnings := logEntries(t, logFile, "the server's timeout ends held reads before http_timeout")
			if tt.want == nil {
				if len(warnings) > 0 {
					t.Fatalf("unexpected warning: %v", warnings)
				}
				return
			}
			if len(warnings) != 1 {
				t.Fatalf("got %d warnings, want 1: %v", len(warnings), warnings)
			}
			w := warnings[0]
			if w["server"] != "srv0" {
				t.Errorf("warning names server %v, want srv0", w["server"])
			}
			for k, v := range tt.want {
				if w[k] != v {
					t.Errorf("warning has %s = %v, want %v (%v)", k, w[k], v, w)
				}
			}
		})
	}
}

// logEntries returns the JSON log entries of file whose message starts
// with prefix.
func logEntries(t *testing.T, file, prefix string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if msg, _ := e["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Any write timeout ends event streams, which never end on their own: a
// server with one warns, naming it, on a route that serves subscribe; a
// route that does not, or a server without one, gets no such warning.
func TestWriteTimeoutWarnsOfEndedStreams(t *testing.T) {
	tests := []struct {
		name, timeouts, allow string
		warn                  bool
	}{
		{"write longer than http_timeout", "write 40s", "", true},
		{"no subscribe on the route", "write 40s", "allow publish", false},
		{"none", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			timeouts := ""
			if tt.timeouts != "" {
				timeouts = fmt.Sprintf("\tservers {\n\t\ttimeouts {\n\t\t\t%s\n\t\t}\n\t}\n", tt.timeouts)
			}
			startCaddyWith(t, fmt.Sprintf("\tlog {\n\t\toutput file %q\n\t\tformat json\n\t\tlevel WARN\n\t}\n%s", logFile, timeouts), fmt.Sprintf(`
http://127.0.0.1:9080 {
	comet {
		hub timeouts
		http_timeout 30s
		%s
	}
}
`, tt.allow))
			warnings := logEntries(t, logFile, "the server's write timeout ends every event stream")
			switch {
			case !tt.warn && len(warnings) > 0:
				t.Fatalf("unexpected warning: %v", warnings)
			case tt.warn && (len(warnings) != 1 || warnings[0]["write_timeout"] != "40s" || warnings[0]["server"] != "srv0"):
				t.Fatalf("got %v, want one warning naming srv0 and write_timeout 40", warnings)
			}
		})
	}
}
