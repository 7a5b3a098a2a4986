package integration

import (
	"fmt"
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
	// Names of this run's own: the hub outlives the test when the next
	// test (or the next -count) loads the same configuration.
	channel, client := fmt.Sprint("reload-", time.Now().UnixNano()), fmt.Sprint("reload-client-", time.Now().UnixNano())
	registerChannel(t, base, channel)
	registerClient(t, base, client)
	id0 := publish(t, base, channel, "before")

	const readers = 5
	got := make([][]message, readers)
	// Each reader says when the reload's empty reply came: the held-reads
	// count alone cannot tell, as the old reads may not have let go of it
	// yet when the reload returns.
	released := make(chan time.Time, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			since, answered := id0, false
			for len(got[i]) < 2 {
				r := read(t, base, channel, since, "client_id", client)
				rep := r.json(t)
				if rep.ReturnCode != 1 {
					t.Errorf("reader %d: %s", i, r.body)
					return
				}
				if strings.Contains(r.body, `"messages":{}`) && !answered {
					answered = true
					released <- time.Now()
				}
				got[i] = append(got[i], rep.Messages[channel]...)
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
	for range readers {
		select {
		case at := <-released:
			if d := at.Sub(start); d > time.Second {
				t.Fatalf("a reader was answered %v after the reload began, want under a second", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a held reader was not answered by the reload")
		}
	}
	// Readers come back on the new configuration's server.
	heldReads(t, base, readers)

	id1 := publish(t, base, channel, "after 1")
	id2 := publish(t, base, channel, "after 2")
	wg.Wait()
	for i, g := range got {
		if len(g) != 2 || g[0].ID != id1 || g[1].ID != id2 {
			t.Fatalf("reader %d got %+v, want exactly ids %d and %d", i, g, id1, id2)
		}
	}

	// The state survived: the retained message, the client and the channel.
	rep := mustCode(t, read(t, base, channel, 0, "client_id", client), 200, 1, "")
	if m := rep.Messages[channel]; len(m) != 3 || m[0].ID != id0 || m[0].Content != "before" {
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

// metricValue reads one sample from the in-process Caddy's metrics
// endpoint.
func metricValue(t *testing.T, series string) float64 {
	t.Helper()
	return metricValueAt(t, "http://localhost:2999", series)
}

// metricValueAt reads one sample from the metrics endpoint of the Caddy
// whose admin API is at admin.
func metricValueAt(t *testing.T, admin, series string) float64 {
	t.Helper()
	body := get(t, admin+"/metrics").body
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
