package testsupport

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// External is a third-party server (Prometheus, an exporter) run by a test
// with arguments and an exact environment; secrets go in the environment,
// never in arguments. It is killed when the test ends.
type External struct {
	Name string
	bin  string
	args []string
	env  []string
	t    testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs Buffer
	done chan struct{}
}

// StartExternal runs bin with args and env (plus PATH and HOME).
func StartExternal(t testing.TB, name, bin string, args []string, env map[string]string) *External {
	t.Helper()
	e := &External{Name: name, bin: bin, args: args, t: t,
		env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}}
	for k, v := range env {
		e.env = append(e.env, k+"="+v)
	}
	e.Start()
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", e.Name, e.Logs())
		}
	})
	return e
}

// Start starts the server (again) with the same arguments and environment.
func (e *External) Start() {
	e.t.Helper()
	cmd := exec.Command(e.bin, e.args...)
	cmd.Env = e.env
	cmd.Stdout, cmd.Stderr = &e.logs, &e.logs
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s (%s): %v", e.Name, e.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.mu.Lock()
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
}

// Stop terminates the server and waits for it; safe to call twice.
func (e *External) Stop() {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Signal sends sig (SIGHUP to reload, SIGSTOP/SIGCONT to freeze).
func (e *External) Signal(sig syscall.Signal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		_ = e.cmd.Process.Signal(sig)
	}
}

// Logs is everything the server wrote.
func (e *External) Logs() string {
	return e.logs.String()
}

// ScrapeJob is one job in a generated Prometheus configuration.
type ScrapeJob struct {
	Name        string
	Targets     []string // host:port
	MetricsPath string   // default /metrics
	// Interval overrides the global interval for this job (the timeout is
	// 4/5 of it). postgres_exporter needs about 1s to answer while its
	// database is down, so a 1s interval would turn that into a scrape failure.
	Interval time.Duration
}

// Prometheus is Debian's prometheus server scraping every second.
type Prometheus struct {
	*External
	Port       int
	URL        string
	ConfigPath string
	targets    int
}

// PrometheusBinary is /usr/bin/prometheus unless PROMETHEUS_BIN says otherwise.
func PrometheusBinary() string {
	if b := os.Getenv("PROMETHEUS_BIN"); b != "" {
		return b
	}
	return "/usr/bin/prometheus"
}

// StartPrometheus starts Prometheus on a free loopback port, its storage in
// a temporary directory, scraping jobs every second, and waits until ready.
func StartPrometheus(t testing.TB, jobs ...ScrapeJob) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	p := &Prometheus{Port: FreePort(t), ConfigPath: filepath.Join(dir, "prometheus.yml")}
	p.URL = "http://127.0.0.1:" + strconv.Itoa(p.Port)
	if err := WritePrometheusConfig(p.ConfigPath, time.Second, jobs...); err != nil {
		t.Fatal(err)
	}
	p.External = StartExternal(t, "prometheus", PrometheusBinary(), []string{
		"--config.file=" + p.ConfigPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(p.Port),
		"--web.enable-lifecycle",
		"--log.level=warn",
	}, nil)
	p.setJobs(jobs)
	p.WaitReady(t)
	return p
}

func (p *Prometheus) setJobs(jobs []ScrapeJob) {
	p.targets = 0
	for _, j := range jobs {
		p.targets += len(j.Targets)
	}
}

// WaitReady waits until /-/ready answers 200 and service discovery has
// handed every configured target to the scrape manager (it batches updates,
// so targets appear a few seconds after readiness).
func (p *Prometheus) WaitReady(t testing.TB) {
	t.Helper()
	if err := WaitHTTP(p.URL+"/-/ready", http.StatusOK, 30*time.Second); err != nil {
		t.Fatalf("prometheus: %v\n%s", err, p.Logs())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := p.activeTargets()
		if err == nil && n == p.targets {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %d active targets after 30s, want %d (%v)\n%s", n, p.targets, err, p.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *Prometheus) activeTargets() (int, error) {
	resp, err := http.Get(p.URL + "/api/v1/targets?state=active")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			ActiveTargets []json.RawMessage `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, err
	}
	return len(doc.Data.ActiveTargets), nil
}

// SetJobs rewrites the configuration and reloads it (POST /-/reload, which
// answers once the new configuration is applied).
func (p *Prometheus) SetJobs(t testing.TB, jobs ...ScrapeJob) {
	t.Helper()
	if err := WritePrometheusConfig(p.ConfigPath, time.Second, jobs...); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.URL+"/-/reload", "text/plain", nil)
	if err != nil {
		t.Fatalf("prometheus reload: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("prometheus reload answered %s\n%s", resp.Status, p.Logs())
	}
	p.setJobs(jobs)
	p.WaitReady(t)
}

// Restart stops Prometheus and starts it again on the same port and data.
func (p *Prometheus) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.Start()
	p.WaitReady(t)
}

// WritePrometheusConfig writes a configuration that scrapes every job at
// interval (timeouts slightly shorter, as Prometheus demands).
func WritePrometheusConfig(path string, interval time.Duration, jobs ...ScrapeJob) error {
	var b strings.Builder
	timeout := interval * 4 / 5
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n",
		promDuration(interval), promDuration(timeout), promDuration(interval))
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %q\n", j.Name)
		if j.Interval > 0 {
			fmt.Fprintf(&b, "    scrape_interval: %s\n    scrape_timeout: %s\n", promDuration(j.Interval), promDuration(j.Interval*4/5))
		}
		if j.MetricsPath != "" {
			fmt.Fprintf(&b, "    metrics_path: %q\n", j.MetricsPath)
		}
		b.WriteString("    static_configs:\n      - targets: [")
		for i, tg := range j.Targets {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", tg)
		}
		b.WriteString("]\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// promDuration renders d in Prometheus's duration syntax (no fractions).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
