// Package runner runs checks as a dependency graph: in parallel up to a
// concurrency limit, each retried with exponential backoff and jitter until it
// passes, the deadline ends, or the answer is definite (the same definite
// error class twice in a row). A check whose prerequisite failed is blocked.
package runner

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
)

// Status of a check.
type Status string

// Check states: the last three are verdicts.
const (
	Pending Status = "pending"
	Running Status = "running"
	Pass    Status = "pass"
	Fail    Status = "fail"
	Blocked Status = "blocked"
)

// CheckResult is what is known about one check, during or after a run.
type CheckResult struct {
	ID              string           `json:"id"`
	Status          Status           `json:"status"`
	Attempts        int              `json:"attempts"`
	Duration        time.Duration    `json:"-"`
	DependsOn       []string         `json:"depends_on,omitempty"`
	BlockedBy       string           `json:"blocked_by,omitempty"`
	Targets         []string         `json:"targets,omitempty"`
	Evidence        string           `json:"evidence,omitempty"`
	Error           string           `json:"error,omitempty"`
	Class           classify.Verdict `json:"class,omitzero"`
	Definite        bool             `json:"ended_on_definite_answer,omitempty"`
	DeadlineReached bool             `json:"deadline_reached,omitempty"`
}

// Done reports whether the check has a verdict.
func (c CheckResult) Done() bool { return c.Status == Pass || c.Status == Fail || c.Status == Blocked }

// Report is the outcome of one run.
type Report struct {
	StartedAt       time.Time
	FinishedAt      time.Time
	Deadline        time.Duration
	Concurrency     int
	DeadlineReached bool
	Checks          []CheckResult
}

// Duration is the run's wall time.
func (r *Report) Duration() time.Duration { return r.FinishedAt.Sub(r.StartedAt) }

// Count returns how many checks have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Exit codes (SPEC section 8).
const (
	ExitHealthy  = 0
	ExitFailed   = 1
	ExitUsage    = 2
	ExitDeadline = 3
)

// ExitCode is 0 when every check passed, 3 when the deadline cut a check that
// was still failing, and 1 when checks failed with a verdict before it.
func (r *Report) ExitCode() int {
	failed := false
	for _, c := range r.Checks {
		if c.Status == Fail && c.DeadlineReached {
			return ExitDeadline
		}
		if c.Status != Pass {
			failed = true
		}
	}
	if failed {
		return ExitFailed
	}
	return ExitHealthy
}

// Options tune a run.
type Options struct {
	Concurrency int // 0: no limit
	Deadline    time.Duration
	Backoff     config.Backoff
	Redactor    *Redactor
	Log         *slog.Logger
	// Observe is told every change of a check (start, attempt, verdict).
	Observe func(CheckResult)
	// Down names checks whose target is known not to run (local mode's
	// supervisor saw the process gone), with what it knows. Such a check
	// still makes one attempt, in case the process is back; if that fails
	// the answer is final at once instead of retried until the deadline.
	Down map[string]string
}

// Classes the runner gives itself. They have no row in classify's table: the
// runner writes their cause and next command.
const (
	// ClassProcessDown is the class of a check whose target process is down.
	ClassProcessDown classify.Class = "local.process-down"
	// ClassDeadline is the class of a check the deadline ended before it ran.
	ClassDeadline classify.Class = "deadline"
)

// Run runs checks against cfg and returns one report however many attempts
// were made.
func Run(ctx context.Context, cfg *config.Config, checks []probe.Check, opt Options) *Report {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Redactor == nil {
		opt.Redactor = NewRedactor(cfg.Secrets()...)
	}
	if opt.Deadline <= 0 {
		opt.Deadline = cfg.Deadline.D()
	}
	if opt.Backoff.Initial <= 0 {
		opt.Backoff = cfg.Backoff
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, opt.Deadline)
	defer cancel()
	r := &run{
		cfg: cfg, opt: opt, ctx: rctx, state: probe.NewRun(start),
		results: make(map[string]*CheckResult, len(checks)),
		done:    make(map[string]chan struct{}, len(checks)),
	}
	if opt.Concurrency > 0 {
		r.sem = make(chan struct{}, opt.Concurrency)
	}
	for _, c := range checks {
		r.results[c.ID] = &CheckResult{ID: c.ID, Status: Pending, DependsOn: c.Deps, Targets: c.Targets}
		r.done[c.ID] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(r.done[c.ID])
			r.check(c)
		}()
	}
	wg.Wait()
	rep := &Report{StartedAt: start, FinishedAt: time.Now(), Deadline: opt.Deadline, Concurrency: opt.Concurrency}
	for _, c := range checks {
		res := *r.results[c.ID]
		if res.DeadlineReached {
			rep.DeadlineReached = true
		}
		rep.Checks = append(rep.Checks, res)
	}
	return rep
}

type run struct {
	cfg   *config.Config
	opt   Options
	ctx   context.Context
	state *probe.Run
	sem   chan struct{}

	mu      sync.Mutex
	results map[string]*CheckResult
	done    map[string]chan struct{}
}

func (r *run) update(id string, f func(*CheckResult)) {
	r.mu.Lock()
	res := r.results[id]
	f(res)
	snap := *res
	r.mu.Unlock()
	if r.opt.Observe != nil {
		r.opt.Observe(snap)
	}
}

func (r *run) get(id string) CheckResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *r.results[id]
}

func (r *run) check(c probe.Check) {
	// Wait for every prerequisite; they always reach a verdict because their
	// own attempts end with the deadline.
	for _, d := range c.Deps {
		<-r.done[d]
		if dep := r.get(d); dep.Status != Pass {
			root := d
			if dep.Status == Blocked {
				root = dep.BlockedBy
			}
			r.update(c.ID, func(res *CheckResult) {
				res.Status, res.BlockedBy = Blocked, root
				res.Evidence = fmt.Sprintf("not run: prerequisite %s %s", d, dep.Status)
				res.DeadlineReached = false
			})
			return
		}
	}
	var start time.Time // the first attempt's start: queueing for a slot is not the check's time
	log := r.opt.Log.With("check", c.ID)
	info := classify.Info{Check: c.ID, Mode: r.cfg.Mode, Vars: c.Vars}
	var last probe.Result
	var lastClass classify.Verdict
	var definiteSeen classify.Class
	for attempt := 1; ; attempt++ {
		if !r.acquire() {
			if start.IsZero() {
				start = time.Now()
			}
			r.finishDeadline(c.ID, start, last, lastClass)
			return
		}
		if start.IsZero() {
			start = time.Now()
		}
		r.update(c.ID, func(res *CheckResult) { res.Status, res.Attempts = Running, attempt })
		actx, cancel := context.WithTimeout(r.ctx, c.Timeout)
		res := c.Probe(actx, probe.Target{Check: c.ID, Cfg: r.cfg, Run: r.state}, log)
		cancel()
		r.release()

		if res.Err == nil {
			r.update(c.ID, func(cr *CheckResult) {
				cr.Status, cr.Duration = Pass, time.Since(start)
				cr.Evidence, cr.Error, cr.Class = r.redact(res.Observed), "", classify.Verdict{}
			})
			log.Debug("check passed", "attempts", attempt, "evidence", r.redact(res.Observed))
			return
		}
		if r.ctx.Err() != nil && attempt > 1 {
			// The deadline cut this attempt short; the previous one says more.
			r.finishDeadline(c.ID, start, last, lastClass)
			return
		}
		last = res
		lastClass = classify.Classify(res.Err, info)
		if why, down := r.opt.Down[c.ID]; down {
			lastClass = classify.Verdict{ID: ClassProcessDown, Definite: true,
				Cause: why + " (" + string(lastClass.ID) + ")",
				Next:  "make logs  # why it stopped; then: make up  # starts what is not running"}
			r.update(c.ID, func(cr *CheckResult) {
				cr.Status, cr.Duration, cr.Definite = Fail, time.Since(start), true
				cr.Evidence, cr.Error, cr.Class = r.redact(res.Observed), r.redact(res.Err.Error()), r.redactClass(lastClass)
			})
			log.Debug("target process is down", "class", lastClass.ID, "error", r.redact(res.Err.Error()))
			return
		}
		log.Debug("attempt failed", "attempt", attempt, "class", lastClass.ID, "error", r.redact(res.Err.Error()))
		r.update(c.ID, func(cr *CheckResult) {
			cr.Evidence, cr.Error, cr.Class = r.redact(res.Observed), r.redact(res.Err.Error()), r.redactClass(lastClass)
		})
		if lastClass.Definite && definiteSeen == lastClass.ID {
			r.update(c.ID, func(cr *CheckResult) {
				cr.Status, cr.Duration, cr.Definite = Fail, time.Since(start), true
			})
			return
		}
		delay := r.backoff(attempt)
		if lastClass.Definite {
			definiteSeen = lastClass.ID
			delay = min(delay, r.opt.Backoff.Initial.D()) // confirm quickly
		} else {
			definiteSeen = ""
		}
		if res.RetryAfter > 0 {
			delay = min(delay, res.RetryAfter)
		}
		select {
		case <-r.ctx.Done():
			r.finishDeadline(c.ID, start, last, lastClass)
			return
		case <-time.After(delay):
		}
	}
}

func (r *run) finishDeadline(id string, start time.Time, last probe.Result, class classify.Verdict) {
	r.update(id, func(cr *CheckResult) {
		cr.Status, cr.Duration, cr.DeadlineReached = Fail, time.Since(start), true
		if last.Err == nil {
			cr.Error = "the deadline ended before the check could run"
			cr.Class = classify.Verdict{ID: ClassDeadline, Cause: "the run's deadline is shorter than the time this check needed to start", Next: "verifier run --deadline 2m"}
			return
		}
		cr.Evidence, cr.Error, cr.Class = r.redact(last.Observed), r.redact(last.Err.Error()), r.redactClass(class)
	})
}

func (r *run) acquire() bool {
	if r.sem == nil {
		return r.ctx.Err() == nil
	}
	select {
	case r.sem <- struct{}{}:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *run) release() {
	if r.sem != nil {
		<-r.sem
	}
}

// backoff is exponential from Initial, capped at Max, with the upper half
// jittered so that retries of many checks do not march in step.
func (r *run) backoff(attempt int) time.Duration {
	d := r.opt.Backoff.Initial.D()
	for i := 1; i < attempt && d < r.opt.Backoff.Max.D(); i++ {
		d *= 2
	}
	d = min(d, r.opt.Backoff.Max.D())
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func (r *run) redact(s string) string {
	s = r.opt.Redactor.Redact(s)
	for _, v := range r.state.Secrets() {
		s = NewRedactor(v).Redact(s)
	}
	return s
}

func (r *run) redactClass(c classify.Verdict) classify.Verdict {
	c.Cause, c.Next = r.redact(c.Cause), r.redact(c.Next)
	return c
}
