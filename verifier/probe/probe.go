// Package probe holds one file per kind of probe (redis.go, postgres.go,
// ac.go, grpc.go, mc.go, prometheus.go, and for the cluster kubernetes.go,
// migration.go, netpol.go), all behind one signature, each declaring its
// checks as Specs, and the catalogue that lists the specs and builds the
// checks the configuration asks for.
//
// A probe makes one attempt and reports what it saw; retrying, deadlines and
// classification belong to the runner. Probes are read-only: they never
// write to Redis or Postgres, never migrate, never call a mutating RPC.
package probe

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/verifier/config"
)

// Func is the one signature every probe has: one attempt against its target.
type Func func(ctx context.Context, t Target, log *slog.Logger) Result

// Target is what a probe attempt is aimed at: its check, the configuration
// and the state the checks of one run share.
type Target struct {
	Check string
	Cfg   *config.Config
	Run   *Run
}

// Result is one attempt's outcome. Err nil means pass. Observed is the
// evidence: the value seen on success, or the last value seen before Err.
type Result struct {
	Observed   string
	Err        error
	RetryAfter time.Duration // a hint: when a retry can first succeed
}

// Pass reports success with the evidence.
func Pass(format string, a ...any) Result { return Result{Observed: fmt.Sprintf(format, a...)} }

// Failed reports a failure with what was observed on the way.
func Failed(err error, observed string) Result { return Result{Observed: observed, Err: err} }

// Run is state shared by the checks of one run: when it started (scrapes must
// be newer), the verifier's token and JWKS from the ac checks, and the MCs
// the registry lists, for the mc checks.
type Run struct {
	Started time.Time

	mu          sync.Mutex
	jwks        []byte
	token       secret.Value
	controllers []*internalv1.MeetingController
	secrets     []secret.Value
	kube        kubernetes.Interface
}

// NewRun starts the shared state of a run.
func NewRun(started time.Time) *Run { return &Run{Started: started} }

func (r *Run) setJWKS(b []byte) { r.mu.Lock(); r.jwks = b; r.mu.Unlock() }
func (r *Run) getJWKS() []byte  { r.mu.Lock(); defer r.mu.Unlock(); return r.jwks }

func (r *Run) setToken(v secret.Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.token = v
	r.secrets = append(r.secrets, v)
}

func (r *Run) getToken() secret.Value { r.mu.Lock(); defer r.mu.Unlock(); return r.token }

func (r *Run) setControllers(c []*internalv1.MeetingController) {
	r.mu.Lock()
	r.controllers = c
	r.mu.Unlock()
}

// Controllers are the live MCs gc.registration found.
func (r *Run) Controllers() []*internalv1.MeetingController {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.controllers
}

// Secrets are values obtained during the run (the access token) that output
// must never show.
func (r *Run) Secrets() []secret.Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]secret.Value(nil), r.secrets...)
}

// each runs fn for every target concurrently and joins the evidence; the
// first failure (in target order) is the check's error.
func each(ctx context.Context, targets []string, fn func(ctx context.Context, target string) (string, error)) Result {
	obs := make([]string, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i], errs[i] = fn(ctx, tg)
		}()
	}
	wg.Wait()
	var res Result
	for i, tg := range targets {
		line := tg + ": " + obs[i]
		if errs[i] != nil && obs[i] == "" {
			line = tg + ": " + errs[i].Error()
		}
		if res.Observed != "" {
			res.Observed += "; "
		}
		res.Observed += line
		if errs[i] != nil && res.Err == nil {
			res.Err = errs[i]
		}
	}
	return res
}
