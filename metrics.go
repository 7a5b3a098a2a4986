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
// in the hubs and beside them in hubPool, which outlive configurations, so a reload neither resets them
// nor registers anything twice: each configuration has its own registry and
// its own collector.
type metricsCollector struct {
	mu   sync.Mutex
	hubs map[string]*pooledHub
}

func newMetricsCollector() *metricsCollector {
	return &metricsCollector{hubs: make(map[string]*pooledHub)}
}

func (m *metricsCollector) add(name string, h *pooledHub) {
	m.mu.Lock()
	m.hubs[name] = h
	m.mu.Unlock()
}

var (
	descHeld      = prometheus.NewDesc("caddy_comet_held_reads", "Reads held now, waiting for a message.", []string{"hub"}, nil)
	descMaxHeld   = prometheus.NewDesc("caddy_comet_max_held_reads", "The hub's max_held_connections: the most reads it holds at once in this process. Not exported when there is no limit.", []string{"hub"}, nil)
	descChannels  = prometheus.NewDesc("caddy_comet_channels", "Channels in the hub.", []string{"hub"}, nil)
	descClients   = prometheus.NewDesc("caddy_comet_clients", "Registered session clients in the hub.", []string{"hub"}, nil)
	descMessages  = prometheus.NewDesc("caddy_comet_messages", "Messages retained in the hub.", []string{"hub"}, nil)
	descPublished = prometheus.NewDesc("caddy_comet_messages_published_total", "Messages published through this process.", []string{"hub"}, nil)
	descReplayed  = prometheus.NewDesc("caddy_comet_publishes_replayed_total", "Publishes through this process that carried an idempotency key already used on their channel, and so published nothing.", []string{"hub"}, nil)
	descReplies   = prometheus.NewDesc("caddy_comet_replies_total", "API replies sent.", []string{"hub"}, nil)
	descErrors    = prometheus.NewDesc("caddy_comet_errors_total", "API error replies, by return code.", []string{"hub", "code"}, nil)
	descStore     = prometheus.NewDesc("caddy_comet_store_duration_seconds", "Store round-trip latency.", []string{"hub"}, nil)
	descDelivery  = prometheus.NewDesc("caddy_comet_delivery_seconds", "For held reads released by a publish: time from this process learning of the publish to the reply being written.", []string{"hub"}, nil)
)

// Describe implements prometheus.Collector.
func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeld, descMaxHeld, descChannels, descClients, descMessages, descPublished, descReplayed, descReplies, descErrors, descStore, descDelivery} {
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
		// No limit (0) is no series: exported as 0, it would make the ratio
		// of held reads to the limit +Inf and fire the near-the-limit
		// alert; absent, the ratio is absent and the alert stays quiet.
		if limit := h.Config().MaxHeldConnections; limit > 0 {
			ch <- prometheus.MustNewConstMetric(descMaxHeld, prometheus.GaugeValue, float64(limit), name)
		}
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
		ch <- prometheus.MustNewConstMetric(descReplayed, prometheus.CounterValue, float64(stats.Replayed.Load()), name)
		ch <- prometheus.MustNewConstMetric(descReplies, prometheus.CounterValue, float64(h.http.Replies()), name)
		for code := hub.CodeBadRequest; code >= hub.CodeOverloaded; code-- {
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(h.http.Errors(code)), name, strconv.Itoa(code))
		}
		count, sum, buckets := stats.StoreLatency.Snapshot()
		ch <- prometheus.MustNewConstHistogram(descStore, count, sum, buckets, name)
		count, sum, buckets = stats.DeliveryLatency.Snapshot()
		ch <- prometheus.MustNewConstHistogram(descDelivery, count, sum, buckets, name)
	}
}
