package comet

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simple-comet/caddy-comet/hub"
)

// gatherCounter returns the value of a counter of the hub named hub that
// a configuration's collector exports.
func gatherCounter(t *testing.T, a *App, metric, hub string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(a.metrics); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "hub" && l.GetValue() == hub {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s for hub %q", metric, hub)
	return 0
}

// gatherErrors returns caddy_comet_errors_total of a hub for one code.
func gatherErrors(t *testing.T, a *App, hubName, code string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(a.metrics); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_comet_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["hub"] == hubName && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no caddy_comet_errors_total{code=%q} for hub %q", code, hubName)
	return 0
}

// caddy_comet_replies_total counts every API reply of a hub (registrations,
// publishes, read replies and error replies), and the count, kept beside the
// hub in hubPool, goes on across a reload.
func TestRepliesTotal(t *testing.T) {
	name := t.Name()
	old := newAppWithoutCleanup()
	ph, err := old.hub(name, HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h := handlerOn(ph)
	post := func(target, form string) {
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		serve(t, h, r)
	}
	post("/channels.json", "channel_id=a")
	post("/channels/a.json", "content=hello")
	serve(t, h, httptest.NewRequest(http.MethodGet, "/channels/a.json?since=0", nil))
	post("/channels.json", "")                                                // an error reply: no channel_id
	serve(t, h, httptest.NewRequest(http.MethodGet, "/elsewhere", nil))       // not the API: no reply
	serve(t, h, httptest.NewRequest(http.MethodGet, "/simple-comet.js", nil)) // a script, not an API reply
	if got := gatherCounter(t, old, "caddy_comet_replies_total", name); got != 4 {
		t.Errorf("replies after four API replies: %v", got)
	}
	if got := gatherErrors(t, old, name, "-1"); got != 1 {
		t.Errorf("errors with code -1 after one: %v", got)
	}
	ph.countError(hub.CodeOK) // not an error: ignored
	ph.countError(-99)        // unknown: ignored, no panic

	reloaded := newTestApp(t)
	if _, err := reloaded.hub(name, HubSettings{}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	serve(t, h, httptest.NewRequest(http.MethodGet, "/channels/a.json?since=0", nil))
	if got := gatherCounter(t, reloaded, "caddy_comet_replies_total", name); got != 5 {
		t.Errorf("replies after a reload and one more reply: %v, want 5", got)
	}
	if got := gatherErrors(t, reloaded, name, "-1"); got != 1 {
		t.Errorf("errors with code -1 after a reload: %v, want the 1 from before", got)
	}
}
