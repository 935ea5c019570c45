package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/darktower/devstack/verifier/runner"
)

type metrics struct {
	up       *prometheus.GaugeVec
	duration *prometheus.GaugeVec
	attempts *prometheus.GaugeVec
	runs     *prometheus.CounterVec
	runSecs  prometheus.Histogram
	lastRun  prometheus.Gauge
	since    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "verifier_check_up",
			Help: "1 if the check's latest attempt passed, 0 if it failed (even while its run still retries) or was blocked."}, []string{"check"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "verifier_check_duration_seconds",
			Help: "Time the check took to reach its verdict in the latest run."}, []string{"check"}),
		attempts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "verifier_check_attempts",
			Help: "Attempts the check made in the latest run."}, []string{"check"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "verifier_runs_total",
			Help: "Finished runs by exit code (0 healthy, 1 failed, 3 deadline)."}, []string{"exit_code"}),
		runSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "verifier_run_duration_seconds",
			Help: "Wall time of whole runs.", Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verifier_last_run_timestamp_seconds",
			Help: "Unix time the latest run finished."}),
	}
	m.since = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "verifier_check_failing_since_timestamp_seconds",
		Help: "Unix time of the first failed attempt of the check's current failing streak; 0 while it passes."}, []string{"check"})
	reg.MustRegister(m.up, m.duration, m.attempts, m.runs, m.runSecs, m.lastRun, m.since)
	return m
}

// live sets a check's state from its latest attempt, before its run ends:
// verifier_check_up drops to 0 at the first failed attempt.
func (m *metrics) live(check string, up bool, since time.Time) {
	v, ts := 0.0, 0.0
	if up {
		v = 1
	}
	if !since.IsZero() {
		ts = float64(since.Unix())
	}
	m.up.WithLabelValues(check).Set(v)
	m.since.WithLabelValues(check).Set(ts)
}

func (m *metrics) record(r *runner.Report) {
	for _, c := range r.Checks {
		up := 0.0
		if c.Status == runner.Pass {
			up = 1
		}
		m.up.WithLabelValues(c.ID).Set(up)
		m.duration.WithLabelValues(c.ID).Set(c.Duration.Seconds())
		m.attempts.WithLabelValues(c.ID).Set(float64(c.Attempts))
	}
	m.runs.WithLabelValues(strconv.Itoa(r.ExitCode())).Inc()
	m.runSecs.Observe(r.Duration().Seconds())
	m.lastRun.Set(float64(r.FinishedAt.Unix()))
}
