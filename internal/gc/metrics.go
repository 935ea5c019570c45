package gc

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are GC's own series (the contract's names).
type Metrics struct {
	heartbeats    *prometheus.CounterVec
	registrations *prometheus.CounterVec
	deregistered  prometheus.Counter
	joins         *prometheus.CounterVec
	staleMarked   prometheus.Counter
}

// Label values, pre-created at zero so dashboards see every series at once.
var (
	heartbeatTypes    = []string{"fast", "comprehensive"}
	heartbeatStatuses = []string{"ok", "not_found", "invalid", "error"}
	registerStatuses  = []string{"ok", "invalid", "error"}
	joinStatuses      = []string{"assigned", "reused", "invalid", "unavailable", "error", "unauthorized", "rate_limited"}
)

// NewMetrics registers GC's metrics on reg, including the registry gauge
// gc_registered_controllers that reads store at scrape time.
func NewMetrics(reg prometheus.Registerer, store *Store, log *slog.Logger) *Metrics {
	m := &Metrics{
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gc_heartbeats_total",
			Help: "Heartbeats received, by type (fast, comprehensive) and outcome.",
		}, []string{"type", "status"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gc_registrations_total",
			Help: "RegisterMC calls, by outcome.",
		}, []string{"status"}),
		deregistered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gc_deregistrations_total",
			Help: "DeregisterMC calls acknowledged.",
		}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gc_meeting_joins_total",
			Help: "Meeting join requests, by outcome (assigned, reused, invalid, unavailable, error, unauthorized: no valid meeting.join token, rate_limited: 429).",
		}, []string{"status"}),
		staleMarked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gc_stale_controllers_marked_total",
			Help: "Controllers this replica marked unhealthy because their heartbeat went stale.",
		}),
	}
	for _, t := range heartbeatTypes {
		for _, s := range heartbeatStatuses {
			m.heartbeats.WithLabelValues(t, s)
		}
	}
	for _, s := range registerStatuses {
		m.registrations.WithLabelValues(s)
	}
	for _, s := range joinStatuses {
		m.joins.WithLabelValues(s)
	}
	reg.MustRegister(m.heartbeats, m.registrations, m.deregistered, m.joins, m.staleMarked,
		&registryCollector{store: store, log: log})
	return m
}

var registeredDesc = prometheus.NewDesc("gc_registered_controllers",
	"Meeting controllers in the registry by health status, read from the database at scrape time (equal on every GC replica).",
	[]string{"status"}, nil)

// registryCollector queries the database on each scrape, so every replica
// reports the same numbers without caching state of its own.
type registryCollector struct {
	store *Store
	log   *slog.Logger
}

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- registeredDesc }

// Collect emits all five health values, zero when absent. When the database
// does not answer it emits nothing: an absent series says "unknown", where
// zeros would claim an empty registry.
func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.CountByHealth(ctx)
	if err != nil {
		c.log.Warn("gc_registered_controllers: counting controllers failed", "error", err)
		return
	}
	for _, h := range HealthValues() {
		ch <- prometheus.MustNewConstMetric(registeredDesc, prometheus.GaugeValue, float64(counts[h]), h)
	}
}
