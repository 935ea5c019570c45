package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	imetrics "github.com/darktower/devstack/internal/metrics"
	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
	"github.com/darktower/devstack/verifier/report"
	"github.com/darktower/devstack/verifier/runner"
)

func load(t *testing.T, yaml string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), config.Options{ResolveSecrets: true,
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestSecretsAppearNowhere drives every output through failures whose errors
// and evidence contain the secrets: a real WRONGPASS from Redis, a real
// refused Postgres connection whose URL holds a password, and a probe that
// echoes every secret the way a careless library echoes a DSN.
func TestSecretsAppearNowhere(t *testing.T) {
	rd := testsupport.StartRedis(t)
	redisPW := "redis-secret-" + testsupport.RandomToken(t, 8)
	pgPW := "pg-secret-" + testsupport.RandomToken(t, 8)
	clientSecret := "client-secret-" + testsupport.RandomToken(t, 8)
	dbURL := fmt.Sprintf("postgres://darktower:%s@127.0.0.1:%d/dark_tower?sslmode=disable", pgPW, testsupport.FreePort(t))
	cfg := load(t, fmt.Sprintf(`version: 1
deadline: 2s
backoff: {initial: 50ms, max: 200ms}
redis: {address: %s, password: {env: RP}}
postgres: {url: {env: DBURL}}
ac: {urls: ["http://127.0.0.1:%d"], client_id: verifier, client_secret: {env: CS}}
`, rd.Addr(), testsupport.FreePort(t)), map[string]string{"RP": redisPW, "DBURL": dbURL, "CS": clientSecret})
	secrets := []string{redisPW, pgPW, clientSecret, dbURL}

	leaky := probe.Check{ID: "ac.leaky", Timeout: time.Second, Probe: func(ctx context.Context, tg probe.Target, _ *slog.Logger) probe.Result {
		msg := fmt.Sprintf("connect %s failed; auth %s:%s; redis %s", dbURL, tg.Cfg.AC.ClientID, clientSecret, redisPW)
		return probe.Failed(classify.At(dbURL, errors.New(msg)), "observed "+pgPW)
	}}
	checks := append(probe.Checks(cfg), leaky)
	var logs bytes.Buffer
	opt := runner.Options{Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	reg := imetrics.NewRegistry()
	s := New(context.Background(), cfg, checks, opt, time.Hour, reg)
	var text bytes.Buffer
	tw := NewTextForTest(&text, len(checks))
	s.opt.Observe = tw.Observe
	rep := s.Run()
	tw.Finish(rep)
	if rep.ExitCode() == runner.ExitHealthy {
		t.Fatal("the run passed; the test needs failures")
	}
	if c := find(rep, "redis.reachable"); c.Class.ID != classify.RedisWrongPassword {
		t.Fatalf("redis.reachable = %+v, want a real WRONGPASS", c)
	}

	outputs := map[string]string{"text (plain)": text.String(), "debug log": logs.String()}
	var b bytes.Buffer
	tty := report.NewText(&b, true, len(checks))
	for _, c := range rep.Checks {
		tty.Observe(c)
	}
	tty.Finish(rep)
	outputs["text (terminal)"] = b.String()
	b.Reset()
	if err := report.JSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	outputs["json"] = b.String()
	b.Reset()
	if err := report.JUnit(&b, rep); err != nil {
		t.Fatal(err)
	}
	outputs["junit"] = b.String()
	h := s.Handler(reg)
	for _, p := range []string{"/healthz", "/", "/metrics"} {
		_, body := get(t, h, p)
		outputs["serve "+p] = body
	}
	for name, out := range outputs {
		if !strings.Contains(out, "ac.leaky") && name != "serve /metrics" {
			t.Errorf("%s does not mention the leaky check: the test proves nothing", name)
		}
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("%s contains a secret", name)
			}
		}
	}
	if !strings.Contains(outputs["json"], "[REDACTED]") {
		t.Error("json shows no [REDACTED] marker where the secrets were")
	}
}

func find(r *runner.Report, id string) runner.CheckResult {
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	return runner.CheckResult{}
}

// TestHealthzFollowsRedisAndSharesRuns: 200 while Redis is healthy, 503 with
// the JSON report once it is down, and concurrent fresh requests share one run.
func TestHealthzFollowsRedisAndSharesRuns(t *testing.T) {
	rd := testsupport.StartRedis(t)
	cfg := load(t, fmt.Sprintf(`version: 1
deadline: 1s
backoff: {initial: 50ms, max: 200ms}
redis: {address: %s, password: {env: RP}}
`, rd.Addr()), map[string]string{"RP": rd.Password})
	var calls atomic.Int32
	slow := probe.Check{ID: "redis.slow", Timeout: time.Second, Probe: func(ctx context.Context, _ probe.Target, _ *slog.Logger) probe.Result {
		calls.Add(1)
		time.Sleep(300 * time.Millisecond)
		return probe.Pass("slow pass")
	}}
	reg := imetrics.NewRegistry()
	s := New(context.Background(), cfg, append(probe.Checks(cfg), slow), runner.Options{}, time.Hour, reg)
	h := s.Handler(reg)

	code, body := get(t, h, "/healthz")
	if code != http.StatusOK {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	var doc report.Document
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.SchemaVersion != report.SchemaVersion || doc.Summary.Passed != 4 {
		t.Fatalf("doc %+v %v", doc.Summary, err)
	}

	before := s.Runs()
	calls.Store(0)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := get(t, h, "/healthz?fresh=1")
			if code != http.StatusOK {
				t.Errorf("fresh /healthz = %d", code)
			}
		}()
	}
	wg.Wait()
	if n := s.Runs() - before; n != 1 || calls.Load() != 1 {
		t.Fatalf("6 concurrent fresh requests made %d runs and %d probe calls, want 1 and 1", n, calls.Load())
	}

	rd.Stop()
	code, body = get(t, h, "/healthz?fresh=1")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprintf("%q", classify.NetRefused)) {
		t.Fatalf("with Redis down /healthz = %d %s", code, body)
	}
	_, m := get(t, h, "/metrics")
	for _, want := range []string{`verifier_check_up{check="redis.reachable"} 0`, `verifier_check_up{check="redis.slow"} 1`,
		`verifier_check_attempts{check="redis.reachable"}`, `verifier_check_duration_seconds{check="redis.reachable"}`,
		`verifier_runs_total{exit_code="3"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, page := get(t, h, "/")
	if !strings.Contains(page, `id="check-redis.reachable" class="fail"`) || !strings.Contains(page, "nothing accepts connections") {
		t.Errorf("status page does not show the failure:\n%s", page)
	}
}

// Issue 11 item 14: a check that starts failing shows on the page and in
// /metrics at its first failed attempt, while its run is still retrying,
// not only when the run's deadline ends.
func TestFailingShowsWhileRunRetries(t *testing.T) {
	cfg := load(t, "version: 1\ndeadline: 60s\nbackoff: {initial: 50ms, max: 100ms}\n", nil)
	var broken atomic.Bool
	flaky := probe.Check{ID: "gc.flaky", Timeout: time.Second, Probe: func(ctx context.Context, _ probe.Target, _ *slog.Logger) probe.Result {
		if broken.Load() {
			return probe.Failed(classify.At("127.0.0.1:1", errors.New("connection refused")), "GC stopped answering")
		}
		return probe.Pass("GC answers")
	}}
	reg := imetrics.NewRegistry()
	s := New(context.Background(), cfg, []probe.Check{flaky}, runner.Options{}, time.Hour, reg)
	h := s.Handler(reg)
	if rep := s.Run(); rep.ExitCode() != runner.ExitHealthy {
		t.Fatalf("first run: exit %d", rep.ExitCode())
	}
	if _, page := get(t, h, "/"); !strings.Contains(page, "Healthy: every check passed") {
		t.Fatalf("after a passing run the page is not healthy:\n%s", page)
	}

	broken.Store(true)
	done := make(chan *runner.Report, 1)
	go func() { done <- s.Run() }()
	testsupport.Eventually(t, 10*time.Second, "the failing check on the page", func() error {
		_, page := get(t, h, "/")
		if strings.Contains(page, "Healthy: every check passed") || !strings.Contains(page, `data-live="failing"`) ||
			!strings.Contains(page, "GC stopped answering") || !strings.Contains(page, "failing since") {
			return fmt.Errorf("page does not show gc.flaky failing:\n%s", page)
		}
		return nil
	})
	_, m := get(t, h, "/metrics")
	if !strings.Contains(m, `verifier_check_up{check="gc.flaky"} 0`) || strings.Contains(m, `verifier_check_failing_since_timestamp_seconds{check="gc.flaky"} 0`) ||
		!strings.Contains(m, `verifier_check_failing_since_timestamp_seconds{check="gc.flaky"}`) {
		t.Errorf("/metrics does not show gc.flaky failing:\n%s", grep(m, "gc.flaky"))
	}
	if f, ok := s.FailingNow()["gc.flaky"]; !ok || f.Since.IsZero() || f.Status != runner.Running {
		t.Errorf("FailingNow = %+v, want gc.flaky still running with a since", s.FailingNow())
	}
	select {
	case <-done:
		t.Fatal("the run ended; the test must observe it while it retries")
	default:
	}

	// It recovers: the run passes and everything clears.
	broken.Store(false)
	if rep := <-done; rep.ExitCode() != runner.ExitHealthy {
		t.Fatalf("after recovery: exit %d", rep.ExitCode())
	}
	_, page := get(t, h, "/")
	_, m = get(t, h, "/metrics")
	if !strings.Contains(page, "Healthy: every check passed") || !strings.Contains(m, `verifier_check_up{check="gc.flaky"} 1`) ||
		!strings.Contains(m, `verifier_check_failing_since_timestamp_seconds{check="gc.flaky"} 0`) {
		t.Fatalf("after recovery: page healthy %v, metrics\n%s", strings.Contains(page, "Healthy: every check passed"), grep(m, "gc.flaky"))
	}
}

func grep(text, part string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
