package comet

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gatherCounter returns the value of the counter metric, with the labels
// want, that a configuration's collector exports.
func gatherCounter(t *testing.T, a *App, metric string, want map[string]string) float64 {
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
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if maps.Equal(labels, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v", metric, want)
	return 0
}

// caddy_comet_replies_total counts every API reply of a hub (registrations,
// publishes, read replies and error replies), and the count, kept beside the
// hub in hubPool, goes on across a reload.
func TestRepliesTotal(t *testing.T) {
	name := t.Name()
	old := newAppWithoutCleanup()
	ph, err := old.useHub(name, HubSettings{}, nil, memoryOpener)
	if err != nil {
		t.Fatal(err)
	}
	h := handlerOn(t, ph)
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
	if got := gatherCounter(t, old, "caddy_comet_replies_total", map[string]string{"hub": name}); got != 4 {
		t.Errorf("replies after four API replies: %v", got)
	}
	if got := gatherCounter(t, old, "caddy_comet_errors_total", map[string]string{"hub": name, "code": "-1"}); got != 1 {
		t.Errorf("errors with code -1 after one: %v", got)
	}

	reloaded := newTestApp(t)
	if _, err := reloaded.useHub(name, HubSettings{}, nil, memoryOpener); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	serve(t, h, httptest.NewRequest(http.MethodGet, "/channels/a.json?since=0", nil))
	if got := gatherCounter(t, reloaded, "caddy_comet_replies_total", map[string]string{"hub": name}); got != 5 {
		t.Errorf("replies after a reload and one more reply: %v, want 5", got)
	}
	if got := gatherCounter(t, reloaded, "caddy_comet_errors_total", map[string]string{"hub": name, "code": "-1"}); got != 1 {
		t.Errorf("errors with code -1 after a reload: %v, want the 1 from before", got)
	}
}
