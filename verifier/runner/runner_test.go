package runner

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
)

// These tests drive the scheduler with in-process probe functions: what is
// under test is ordering, retry and verdict logic, not a datastore.

func cfg() *config.Config {
	return &config.Config{Mode: "local", Deadline: config.Duration(3 * time.Second),
		Backoff: config.Backoff{Initial: config.Duration(20 * time.Millisecond), Max: config.Duration(100 * time.Millisecond)}}
}

func fn(f func(n int) probe.Result) probe.Func {
	var calls atomic.Int32
	return func(ctx context.Context, t probe.Target, log *slog.Logger) probe.Result {
		return f(int(calls.Add(1)))
	}
}

func byID(r *Report) map[string]CheckResult {
	m := map[string]CheckResult{}
	for _, c := range r.Checks {
		m[c.ID] = c
	}
	return m
}

func TestDefiniteTwiceEndsEarlyAndBlocksDependents(t *testing.T) {
	checks := []probe.Check{
		{ID: "redis.reachable", Timeout: time.Second, Probe: fn(func(int) probe.Result {
			return probe.Failed(classify.Failf(classify.RedisWrongPassword, "WRONGPASS"), "")
		})},
		{ID: "redis.persistence", Deps: []string{"redis.reachable"}, Timeout: time.Second, Probe: fn(func(int) probe.Result { return probe.Pass("ok") })},
		{ID: "mc.ready", Deps: []string{"redis.persistence"}, Timeout: time.Second, Probe: fn(func(int) probe.Result { return probe.Pass("ok") })},
		{ID: "postgres.reachable", Timeout: time.Second, Probe: fn(func(int) probe.Result { return probe.Pass("ok") })},
	}
	start := time.Now()
	rep := Run(context.Background(), cfg(), checks, Options{})
	if el := time.Since(start); el > time.Second {
		t.Fatalf("run took %v: a definite failure must not wait for the 3s deadline", el)
	}
	m := byID(rep)
	if c := m["redis.reachable"]; c.Status != Fail || c.Attempts != 2 || !c.Definite || c.Class.ID != classify.RedisWrongPassword {
		t.Fatalf("redis.reachable = %+v", c)
	}
	if c := m["mc.ready"]; c.Status != Blocked || c.BlockedBy != "redis.reachable" {
		t.Fatalf("mc.ready = %+v, want blocked by the root failure", c)
	}
	if m["postgres.reachable"].Status != Pass || rep.ExitCode() != ExitFailed {
		t.Fatalf("postgres %v exit %d", m["postgres.reachable"].Status, rep.ExitCode())
	}
}

func TestTransientRetriedUntilPass(t *testing.T) {
	checks := []probe.Check{{ID: "redis.reachable", Timeout: time.Second, Probe: fn(func(n int) probe.Result {
		if n < 4 {
			return probe.Failed(classify.Failf(classify.RedisLoading, "LOADING"), "")
		}
		return probe.Pass("PONG")
	})}}
	rep := Run(context.Background(), cfg(), checks, Options{})
	if c := rep.Checks[0]; c.Status != Pass || c.Attempts != 4 || rep.ExitCode() != ExitHealthy {
		t.Fatalf("%+v exit %d", c, rep.ExitCode())
	}
}

func TestDeadlineKeepsLastInformativeError(t *testing.T) {
	c := cfg()
	c.Deadline = config.Duration(300 * time.Millisecond)
	checks := []probe.Check{{ID: "gc.health", Timeout: time.Second, Probe: func(ctx context.Context, _ probe.Target, _ *slog.Logger) probe.Result {
		return probe.Failed(classify.At("127.0.0.1:1", errors.New("dial tcp: connection refused")), "")
	}}}
	rep := Run(context.Background(), c, checks, Options{})
	got := rep.Checks[0]
	if got.Status != Fail || !got.DeadlineReached || got.Class.ID != classify.NetRefused || rep.ExitCode() != ExitDeadline {
		t.Fatalf("%+v exit %d", got, rep.ExitCode())
	}
	if got.Attempts < 3 {
		t.Fatalf("only %d attempts in 300ms with 20ms backoff", got.Attempts)
	}
}

func TestConcurrencyOneRunsOneAtATime(t *testing.T) {
	var inFlight, peak atomic.Int32
	slow := func(ctx context.Context, _ probe.Target, _ *slog.Logger) probe.Result {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		inFlight.Add(-1)
		return probe.Pass("ok")
	}
	var checks []probe.Check
	for _, id := range []string{"a.x", "b.x", "c.x", "d.x"} {
		checks = append(checks, probe.Check{ID: id, Timeout: time.Second, Probe: slow})
	}
	rep := Run(context.Background(), cfg(), checks, Options{Concurrency: 1})
	if peak.Load() != 1 || rep.Count(Pass) != 4 {
		t.Fatalf("peak %d passes %d", peak.Load(), rep.Count(Pass))
	}
	peak.Store(0)
	Run(context.Background(), cfg(), checks, Options{})
	if peak.Load() != 4 {
		t.Fatalf("unlimited run peaked at %d, want 4", peak.Load())
	}
}

func TestLevelsRejectsCycle(t *testing.T) {
	_, err := Levels([]probe.Check{{ID: "a", Deps: []string{"b"}}, {ID: "b", Deps: []string{"a"}}})
	if err == nil {
		t.Fatal("cycle accepted")
	}
	lv, err := Levels([]probe.Check{{ID: "c", Deps: []string{"b"}}, {ID: "b", Deps: []string{"a"}}, {ID: "a"}})
	if err != nil || len(lv) != 3 || lv[0][0].ID != "a" {
		t.Fatalf("levels %v %v", lv, err)
	}
}

// Issue 11 item 13: a check whose process the supervisor reports down makes
// one attempt; if that fails, the verdict is final at once with the
// supervisor's reason, and its dependents are blocked. A refused connection
// alone is retried until the deadline (something may still be starting).
func TestDownTargetFailsOnFirstAttempt(t *testing.T) {
	refused := fn(func(int) probe.Result {
		return probe.Failed(classify.At("127.0.0.1:6379", errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")), "")
	})
	checks := []probe.Check{
		{ID: "redis.reachable", Timeout: time.Second, Probe: refused},
		{ID: "mc.ready", Deps: []string{"redis.reachable"}, Timeout: time.Second, Probe: fn(func(int) probe.Result { return probe.Pass("ok") })},
		{ID: "gc.health", Timeout: time.Second, Probe: fn(func(int) probe.Result { return probe.Pass("ok") })},
	}
	rep := Run(context.Background(), cfg(), checks, Options{Down: map[string]string{"redis.reachable": "redis (pid 42) is not running"}})
	m := byID(rep)
	c := m["redis.reachable"]
	if c.Status != Fail || c.Attempts != 1 || !c.Definite || c.DeadlineReached || c.Class.ID != ClassProcessDown ||
		!strings.Contains(c.Class.Cause, "redis (pid 42) is not running") {
		t.Fatalf("redis.reachable = %+v, want a definite process-down failure after one attempt", c)
	}
	if b := m["mc.ready"]; b.Status != Blocked || b.BlockedBy != "redis.reachable" {
		t.Fatalf("mc.ready = %+v, want blocked", b)
	}
	if rep.ExitCode() != ExitFailed || rep.DeadlineReached {
		t.Fatalf("exit %d, deadline reached %v; want 1 before the deadline", rep.ExitCode(), rep.DeadlineReached)
	}

	// Without the supervisor's word the same refusal is retried to the deadline.
	rep = Run(context.Background(), cfg(), checks[:1], Options{})
	if c := byID(rep)["redis.reachable"]; c.Attempts < 2 || !c.DeadlineReached {
		t.Fatalf("without Down: %+v, want retries until the deadline", c)
	}

	// A process that came back passes: Down is a hint, not a verdict.
	rep = Run(context.Background(), cfg(), checks[2:], Options{Down: map[string]string{"gc.health": "gc-0 is not running"}})
	if c := byID(rep)["gc.health"]; c.Status != Pass {
		t.Fatalf("gc.health = %+v, want pass", c)
	}
}
