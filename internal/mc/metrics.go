package mc

import "github.com/prometheus/client_golang/prometheus"

// Label values, fixed by the contract.
const (
	statusOK       = "ok"
	statusNotFound = "not_found"
	statusError    = "error"
	statusRejected = "rejected"
	statusAccepted = "accepted"
	statusRefused  = "refused"

	hbFast          = "fast"
	hbComprehensive = "comprehensive"
)

type mcMetrics struct {
	heartbeats     *prometheus.CounterVec
	registrations  *prometheus.CounterVec
	assignments    *prometheus.CounterVec
	activeMeetings prometheus.Gauge
	sessions       *prometheus.CounterVec
	activeSessions prometheus.Gauge
	registered     prometheus.Gauge
	draining       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *mcMetrics {
	m := &mcMetrics{
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mc_gc_heartbeats_total",
			Help: "Heartbeats sent to GC, by type and outcome.",
		}, []string{"type", "status"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mc_gc_registrations_total",
			Help: "RegisterMC attempts, by outcome (ok, rejected, error).",
		}, []string{"status"}),
		assignments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mc_meetings_assigned_total",
			Help: "AssignMeeting calls, by outcome.",
		}, []string{"status"}),
		activeMeetings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mc_active_meetings",
			Help: "Meetings assigned to this controller (SCARD of mc:{id}:meetings in Redis, last read).",
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mc_webtransport_sessions_total",
			Help: "WebTransport session requests, accepted or refused.",
		}, []string{"status"}),
		activeSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mc_webtransport_active_sessions",
			Help: "Open WebTransport sessions (reported to GC as current participants).",
		}),
		registered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mc_registered",
			Help: "1 while this controller is registered with GC.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mc_draining",
			Help: "1 once shutdown has begun.",
		}),
	}
	reg.MustRegister(m.heartbeats, m.registrations, m.assignments, m.activeMeetings,
		m.sessions, m.activeSessions, m.registered, m.draining)
	// Zero every series so dashboards and rate() see them before the first event.
	for _, t := range []string{hbFast, hbComprehensive} {
		for _, s := range []string{statusOK, statusNotFound, statusError} {
			m.heartbeats.WithLabelValues(t, s)
		}
	}
	for _, s := range []string{statusOK, statusRejected, statusError} {
		m.registrations.WithLabelValues(s)
	}
	for _, s := range []string{statusAccepted, statusRejected} {
		m.assignments.WithLabelValues(s)
	}
	for _, s := range []string{statusAccepted, statusRefused} {
		m.sessions.WithLabelValues(s)
	}
	return m
}
