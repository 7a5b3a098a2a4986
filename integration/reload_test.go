package integration

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReloadKeepsStateAndReleasesHeldReads reloads the configuration while
// reads are held: the held reads are answered at once (not at http_timeout),
// the hub keeps its channels, messages, clients and ids, and readers that
// carry on with since miss nothing and see nothing twice.
func TestReloadKeepsStateAndReleasesHeldReads(t *testing.T) {
	startCaddy(t, apiSites)
	registerChannel(t, base, "reload")
	registerClient(t, base, "reload-client")
	id0 := publish(t, base, "reload", "before")

	const readers = 5
	type result struct {
		got      []message
		released time.Time // when the reload's empty reply came
	}
	results := make([]result, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			since := id0
			for len(results[i].got) < 2 {
				r := read(t, base, "reload", since, "client_id", "reload-client")
				rep := r.json(t)
				if rep.ReturnCode != 1 {
					t.Errorf("reader %d: %s", i, r.body)
					return
				}
				if strings.Contains(r.body, `"messages":{}`) && results[i].released.IsZero() {
					results[i].released = time.Now()
				}
				results[i].got = append(results[i].got, rep.Messages["reload"]...)
				since = rep.LastID
			}
		}()
	}
	heldReads(t, base, readers)

	publishedBefore := metricValue(t, `caddy_comet_messages_published_total{hub="api"}`)
	start := time.Now()
	if err := loadCaddyfile(strings.Replace(apiSites, `respond "fallback" 404`, `respond "reloaded" 404`, 1)); err != nil {
		t.Fatal(err)
	}
	// Readers come back on the new configuration's server.
	heldReads(t, base, readers)
	for i := range readers {
		if results[i].released.IsZero() {
			t.Fatalf("reader %d was not answered by the reload", i)
		}
		if d := results[i].released.Sub(start); d > time.Second {
			t.Fatalf("reader %d answered %v after the reload began, want under a second", i, d)
		}
	}

	id1 := publish(t, base, "reload", "after 1")
	id2 := publish(t, base, "reload", "after 2")
	wg.Wait()
	for i, res := range results {
		if len(res.got) != 2 || res.got[0].ID != id1 || res.got[1].ID != id2 {
			t.Fatalf("reader %d got %+v, want exactly ids %d and %d", i, res.got, id1, id2)
		}
	}

	// The state survived: the retained message, the client and the channel.
	rep := mustCode(t, read(t, base, "reload", 0, "client_id", "reload-client"), 200, 1, "")
	if m := rep.Messages["reload"]; len(m) != 3 || m[0].ID != id0 || m[0].Content != "before" {
		t.Fatalf("after reload: %+v", rep.Messages)
	}
	if r := get(t, base+"/elsewhere"); r.body != "reloaded" {
		t.Fatalf("the new configuration is not running: %q", r.body)
	}
	// The metrics are served by the new configuration and kept their counts.
	if after := metricValue(t, `caddy_comet_messages_published_total{hub="api"}`); after != publishedBefore+2 {
		t.Fatalf("messages published: %v before the reload, %v after two more, want %v", publishedBefore, after, publishedBefore+2)
	}
}

// metricValue reads one sample from Caddy's metrics endpoint.
func metricValue(t *testing.T, series string) float64 {
	t.Helper()
	body := get(t, "http://localhost:2999/metrics").body
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", series)
	return 0
}
