// Package serve runs the checks continually and serves the verdict: /healthz
// (200 or 503 with the JSON report), /metrics, and a status page for people.
// Concurrent requests that need a fresh run share one run.
package serve

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
	"github.com/darktower/devstack/verifier/report"
	"github.com/darktower/devstack/verifier/runner"
)

// HistoryLen is how many past verdicts the status page keeps per check.
const HistoryLen = 20

// Verdict is one past result of a check.
type Verdict struct {
	At     time.Time
	Status runner.Status
	Class  classify.Class
}

// Server holds the latest report and the run in flight.
type Server struct {
	cfg      *config.Config
	checks   []probe.Check
	opt      runner.Options
	interval time.Duration
	ctx      context.Context // the server's lifetime; runs outlive requests

	mu       sync.Mutex
	latest   *runner.Report
	live     map[string]runner.CheckResult
	history  map[string][]Verdict
	inflight *flight
	runs     int
	// failing holds each check whose latest attempt failed, across runs,
	// so a run still retrying does not hide an outage behind the previous
	// run's verdict (a 40 s SIGSTOP of GC showed "Healthy" throughout).
	failing map[string]Failing

	m *metrics
}

// Failing is a check whose latest attempt failed: since when (the first
// failed attempt of the streak) and what the latest one found.
type Failing struct {
	Since time.Time
	runner.CheckResult
}

type flight struct {
	done chan struct{}
	rep  *runner.Report
}

// New builds a server; metrics are registered on reg.
func New(ctx context.Context, cfg *config.Config, checks []probe.Check, opt runner.Options, interval time.Duration, reg prometheus.Registerer) *Server {
	return &Server{cfg: cfg, checks: checks, opt: opt, interval: interval, ctx: ctx,
		live: map[string]runner.CheckResult{}, history: map[string][]Verdict{}, failing: map[string]Failing{}, m: newMetrics(reg)}
}

// Loop runs the checks, waits interval, and again, until ctx ends.
func (s *Server) Loop(ctx context.Context) {
	for {
		s.Run()
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.interval):
		}
	}
}

// Run starts a run, or joins the one in flight, and returns its report.
func (s *Server) Run() *runner.Report {
	f, leader := s.join()
	if leader {
		s.lead(f)
	}
	<-f.done
	return f.rep
}

func (s *Server) join() (*flight, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight, false
	}
	s.inflight = &flight{done: make(chan struct{})}
	s.live = map[string]runner.CheckResult{}
	return s.inflight, true
}

func (s *Server) lead(f *flight) {
	opt := s.opt
	opt.Observe = func(c runner.CheckResult) {
		s.mu.Lock()
		s.live[c.ID] = c
		s.track(c)
		s.mu.Unlock()
		if s.opt.Observe != nil {
			s.opt.Observe(c)
		}
	}
	rep := runner.Run(s.ctx, s.cfg, s.checks, opt)
	s.m.record(rep)
	s.mu.Lock()
	s.latest, s.inflight = rep, nil
	s.runs++
	for _, c := range rep.Checks {
		h := append(s.history[c.ID], Verdict{At: rep.FinishedAt, Status: c.Status, Class: c.Class.ID})
		if len(h) > HistoryLen {
			h = h[len(h)-HistoryLen:]
		}
		s.history[c.ID] = h
	}
	s.mu.Unlock()
	f.rep = rep
	close(f.done)
}

// track follows each attempt as it happens: a failed attempt marks the
// check failing now (page and metrics), a pass clears it. Called with mu held.
func (s *Server) track(c runner.CheckResult) {
	switch {
	case c.Status == runner.Pass:
		delete(s.failing, c.ID)
		s.m.live(c.ID, true, time.Time{})
	case c.Status == runner.Blocked:
		// Its prerequisite is the one failing, and says so itself.
		delete(s.failing, c.ID)
		s.m.live(c.ID, false, time.Time{})
	case c.Error != "":
		f, ok := s.failing[c.ID]
		if !ok {
			f.Since = time.Now()
		}
		f.CheckResult = c
		s.failing[c.ID] = f
		s.m.live(c.ID, false, f.Since)
	}
}

// FailingNow returns the checks whose latest attempt failed.
func (s *Server) FailingNow() map[string]Failing {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Failing, len(s.failing))
	for k, v := range s.failing {
		out[k] = v
	}
	return out
}

// Runs is how many runs have finished.
func (s *Server) Runs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs
}

// Handler serves /healthz, /metrics and the status page.
func (s *Server) Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	httpserver.Metrics(mux, reg)
	mux.HandleFunc("GET /{$}", s.page)
	return mux
}

// healthz answers with the latest report: 200 when healthy, 503 otherwise.
// Before the first run finishes, or with ?fresh=1, it waits for a run; every
// request waiting at the same time shares that one run.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rep := s.latest
	s.mu.Unlock()
	if rep == nil || r.URL.Query().Get("fresh") == "1" {
		f, leader := s.join()
		if leader {
			go s.lead(f)
		}
		select {
		case <-f.done:
			rep = f.rep
		case <-r.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if rep.ExitCode() != runner.ExitHealthy {
		code = http.StatusServiceUnavailable
	}
	httpserver.WriteJSON(w, code, report.NewDocument(rep))
}
