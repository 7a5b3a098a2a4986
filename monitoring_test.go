package comet

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// monitoringDir holds the Grafana dashboard and the Prometheus files; the
// integration package (dev/integration) checks that the metrics they name exist.
const monitoringDir = "examples/monitoring"

// The dashboard imports into any Grafana with any Prometheus: it is JSON,
// every panel queries the data source the user picks in the $datasource
// variable (never a uid of ours), and every panel has a query.
func TestMonitoringDashboard(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int         `json:"id"`
			Type       string      `json:"type"`
			Title      string      `json:"title"`
			Datasource *datasource `json:"datasource"`
			GridPos    struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Targets []struct {
				RefID      string      `json:"refId"`
				Expr       string      `json:"expr"`
				Datasource *datasource `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(body, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard without uid or title: %q %q", dash.UID, dash.Title)
	}
	hasVariable := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasVariable = true
		}
	}
	if !hasVariable {
		t.Error("no $datasource variable of type datasource for Prometheus")
	}
	want := datasource{Type: "prometheus", UID: "${datasource}"}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is taken", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Datasource == nil || *p.Datasource != want {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, want)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || !strings.Contains(q.Expr, "caddy_comet_") {
				t.Errorf("panel %q, query %s: %q queries no caddy_comet metric", p.Title, q.RefID, q.Expr)
			}
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource != nil && *q.Datasource != want {
				t.Errorf("panel %q, query %s: datasource %+v, want %+v", p.Title, q.RefID, q.Datasource, want)
			}
		}
	}
}

// Prometheus accepts the alert rules and the example configuration that
// loads them, and the rules fire, and stay quiet, as their unit tests in
// alerts_test.yml say.
func TestMonitoringPrometheusFiles(t *testing.T) {
	promtool := requirePromtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// requirePromtool skips the test when promtool is missing (fails under
// CI=true, where it must run) and returns its path.
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (CI=true): %v; install it with: apt-get install -y --no-install-recommends prometheus", err)
		}
		t.Skip("promtool not installed; install it with: apt-get install -y --no-install-recommends prometheus")
	}
	return path
}
