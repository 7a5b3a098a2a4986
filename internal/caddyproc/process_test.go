package caddyproc

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	os.Exit(RunTests(m))
}

func get(t *testing.T, url string) (string, error) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// A process serves its site once Start returns, serves the new site once
// Reload returns, and is gone once Stop returns.
func TestStartReloadStop(t *testing.T) {
	site := func(body string) func(string) string {
		return func(base string) string { return "\n" + base + " {\n\trespond " + body + "\n}\n" }
	}
	p := Start(t, site("one"))
	if body, err := get(t, p.Base); err != nil || body != "one" {
		t.Fatalf("GET %s after Start: %q, %v; want one", p.Base, body, err)
	}
	if _, err := get(t, p.Admin+"/config/"); err != nil {
		t.Fatalf("admin API at %s: %v", p.Admin, err)
	}
	p.Reload(site("two")(p.Base))
	if body, err := get(t, p.Base); err != nil || body != "two" {
		t.Fatalf("GET %s after Reload: %q, %v; want two", p.Base, body, err)
	}
	if line := p.WaitLog("load complete"); !strings.Contains(line, `"level":"info"`) {
		t.Fatalf("WaitLog returned %q, want the whole line", line)
	}
	p.Stop()
	if body, err := get(t, p.Base); err == nil {
		t.Fatalf("GET %s after Stop: %q, want a refused connection", p.Base, body)
	}
}
