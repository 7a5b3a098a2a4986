package comet

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simple-comet/caddy-comet/hub"
)

// metricsCollector exports the hubs of one configuration. The numbers live
// in the hubs, which outlive configurations, so a reload neither resets them
// nor registers anything twice: each configuration has its own registry and
// its own collector.
type metricsCollector struct {
	mu   sync.Mutex
	hubs map[string]*hub.Hub
}

func newMetricsCollector() *metricsCollector {
	return &metricsCollector{hubs: make(map[string]*hub.Hub)}
}

func (m *metricsCollector) add(name string, h *hub.Hub) {
	m.mu.Lock()
	m.hubs[name] = h
	m.mu.Unlock()
}

var (
	descHeld      = prometheus.NewDesc("caddy_comet_held_reads", "Reads held now, waiting for a message.", []string{"hub"}, nil)
	descChannels  = prometheus.NewDesc("caddy_comet_channels", "Channels in the hub.", []string{"hub"}, nil)
	descClients   = prometheus.NewDesc("caddy_comet_clients", "Registered session clients in the hub.", []string{"hub"}, nil)
	descMessages  = prometheus.NewDesc("caddy_comet_messages", "Messages retained in the hub.", []string{"hub"}, nil)
	descPublished = prometheus.NewDesc("caddy_comet_messages_published_total", "Messages published through this process.", []string{"hub"}, nil)
	descReplies   = prometheus.NewDesc("caddy_comet_replies_total", "API replies sent.", []string{"hub"}, nil)
	descErrors    = prometheus.NewDesc("caddy_comet_errors_total", "API error replies, by return code.", []string{"hub", "code"}, nil)
	descStore     = prometheus.NewDesc("caddy_comet_store_duration_seconds", "Store round-trip latency.", []string{"hub"}, nil)
)

// Describe implements prometheus.Collector.
func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeld, descChannels, descClients, descMessages, descPublished, descReplies, descErrors, descStore} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, h := range m.hubs {
		stats := h.Stats()
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(h.Held()), name)
		// Counts, never a listing: a scrape costs the same on any hub.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if c, err := h.Counts(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(c.Channels), name)
			ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(c.Clients), name)
			if c.Messages >= 0 {
				ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(c.Messages), name)
			}
		}
		cancel()
		ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(stats.Published.Load()), name)
		ch <- prometheus.MustNewConstMetric(descReplies, prometheus.CounterValue, float64(stats.Replies.Load()), name)
		for code := 1; code < len(stats.Errors); code++ {
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(stats.Errors[code].Load()), name, strconv.Itoa(-code))
		}
		count, sum, buckets := stats.StoreLatency.Snapshot()
		ch <- prometheus.MustNewConstHistogram(descStore, count, sum, buckets, name)
	}
}
