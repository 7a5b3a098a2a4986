package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// monitoringSites has a hub with a held-read limit and one without, and
// serves the metrics on a site too, as examples/monitoring/README.md
// suggests for a Prometheus on another host.
const monitoringSites = `
http://127.0.0.1:9080 {
	bind 127.0.0.1
	handle_path /unlimited/* {
		comet {
			hub unlimited
		}
	}
	handle {
		comet {
			hub monitoring
			enable_status
			max_held_connections 50
		}
	}
}

http://127.0.0.1:9081 {
	bind 127.0.0.1
	metrics
}
`

// The metrics an operator watches are what they say: the held-read limit
// is the configured one, and absent without a limit (so that an alert on
// held reads over it stays quiet); a held read released by a publish is one
// delivery, and neither a read answered at once nor a publish is.
func TestMonitoringMetricValues(t *testing.T) {
	startCaddy(t, monitoringSites)
	registerChannel(t, base, "watched")
	since := publish(t, base, "watched", "before")
	mustCode(t, read(t, base, "watched", 0), 200, 1, "") // answered at once

	replies := goRead(t, base, "watched", since)
	heldReads(t, base, 1)
	if n := metricValue(t, `caddy_comet_held_reads{hub="monitoring"}`); n != 1 {
		t.Fatalf("caddy_comet_held_reads %v while one read is held, want 1", n)
	}
	if n := metricValue(t, `caddy_comet_delivery_seconds_count{hub="monitoring"}`); n != 0 {
		t.Fatalf("caddy_comet_delivery_seconds_count %v before any held read was released, want 0", n)
	}
	id := publish(t, base, "watched", "after")
	if rep := mustCode(t, awaitReply(t, replies, "read on watched"), 200, 1, ""); rep.LastID != id {
		t.Fatalf("held read: %+v, want the message %d", rep, id)
	}
	// The delivery is counted once the reply is written, which can reach
	// the client first: wait for the count, not for a fixed time.
	eventuallyMetric(t, `caddy_comet_delivery_seconds_count{hub="monitoring"}`, 1)
	if sum := metricValue(t, `caddy_comet_delivery_seconds_sum{hub="monitoring"}`); sum <= 0 || sum >= 10 {
		t.Fatalf("caddy_comet_delivery_seconds_sum %v for one delivery, want more than 0 and under the 10 s the test waited", sum)
	}
	if n := metricValue(t, `caddy_comet_max_held_reads{hub="monitoring"}`); n != 50 {
		t.Fatalf("caddy_comet_max_held_reads %v, want max_held_connections 50", n)
	}
	scrape := get(t, "http://localhost:2999/metrics").body
	if !strings.Contains(scrape, `caddy_comet_held_reads{hub="unlimited"}`) {
		t.Fatal("the hub without a limit is not in the metrics at all")
	}
	if strings.Contains(scrape, `caddy_comet_max_held_reads{hub="unlimited"}`) {
		t.Fatal("caddy_comet_max_held_reads is exported for a hub without a limit")
	}
	// Caddy's metrics handler on a site serves the same metrics.
	if site := get(t, "http://127.0.0.1:9081/metrics"); site.status != 200 || !strings.Contains(site.body, `caddy_comet_max_held_reads{hub="monitoring"} 50`) {
		t.Fatalf("metrics on a site: %d, without the hub's limit", site.status)
	}
}

// Every metric examples/monitoring's dashboard and alert rules name is in a
// live scrape, for a hub on the memory store that has held a read and
// delivered a message: a renamed metric breaks this test, not a dashboard
// in production.
func TestMonitoringExamplesNameLiveMetrics(t *testing.T) {
	startCaddy(t, monitoringSites)
	registerChannel(t, base, "watched")
	since := publish(t, base, "watched", "before")
	replies := goRead(t, base, "watched", since)
	heldReads(t, base, 1)
	publish(t, base, "watched", "after")
	mustCode(t, awaitReply(t, replies, "read on watched"), 200, 1, "")
	eventuallyMetric(t, `caddy_comet_delivery_seconds_count{hub="monitoring"}`, 1)

	families := scrapeFamilies(t, get(t, "http://localhost:2999/metrics").body, "monitoring")
	named := regexp.MustCompile(`caddy_comet_[a-z_]+`)
	for _, file := range []string{"dashboard.json", "alerts.yml", "alerts_test.yml"} {
		body, err := os.ReadFile(filepath.Join(repoRoot, "examples", "monitoring", file))
		if err != nil {
			t.Fatal(err)
		}
		names := named.FindAllString(string(body), -1)
		if len(names) == 0 {
			t.Fatalf("%s names no caddy_comet metric", file)
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			if _, ok := families[familyOf(name, families)]; !ok {
				t.Errorf("%s names %s, which the live metrics of a hub lack", file, name)
			}
		}
	}
}

// scrapeFamilies returns the type of every caddy_comet metric family in a
// scrape that has a sample of hub.
func scrapeFamilies(t *testing.T, scrape, hub string) map[string]string {
	t.Helper()
	types := map[string]string{}
	families := map[string]string{}
	for _, line := range strings.Split(scrape, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, typ, ok := strings.Cut(rest, " "); ok {
				types[name] = typ
			}
			continue
		}
		name, labels, ok := strings.Cut(line, "{")
		if !ok || !strings.HasPrefix(name, "caddy_comet_") || !strings.Contains(labels, `hub="`+hub+`"`) {
			continue
		}
		family := familyOf(name, types)
		families[family] = types[family]
	}
	if len(families) == 0 {
		t.Fatalf("no caddy_comet metrics of hub %s in:\n%s", hub, scrape)
	}
	return families
}

// familyOf maps a histogram's series (name_bucket, name_sum, name_count) to
// the histogram, and any other name to itself.
func familyOf(name string, types map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
			return base
		}
	}
	return name
}

// eventuallyMetric waits until a series has the value want, within 10 s.
// Nothing signals a metric's change, so it polls.
func eventuallyMetric(t *testing.T, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metricValue(t, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", series, got, want)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state, not standing in for a signal
	}
}
