package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/infra/observability"
	"github.com/darktower/devstack/internal/pgcluster"
	"github.com/darktower/devstack/internal/secret"
)

// Stack is a local stack: its layout, secrets and our binaries.
type Stack struct {
	Layout
	BinDir  string // where ac-service, global-controller, ... are built
	Out     io.Writer
	Secrets StoredSecrets
	Topo    *Topology
}

// Open loads (or creates) the state directory's secrets and configuration.
func Open(stateDir string, base int, binDir string, out io.Writer) (*Stack, error) {
	if base < 1024 || base+PortSpan > 65535 {
		return nil, fmt.Errorf("PORT_BASE: expected a port from 1024 to %d, got %d", 65535-PortSpan, base)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	if binDir, err = filepath.Abs(binDir); err != nil {
		return nil, err
	}
	l := Layout{StateDir: abs, Base: base}
	st, err := l.LoadOrCreateSecrets()
	if err != nil {
		return nil, err
	}
	s := &Stack{Layout: l, BinDir: binDir, Out: out, Secrets: st}
	s.Topo = l.Topology(st.Secrets(), secret.New(st.PostgresPassword), secret.New(st.RedisPassword))
	return s, nil
}

// component is one part of the stack in start order.
type component struct {
	stage   int // components of one stage start together, after the stage before
	name    string
	ports   []int
	udp     []int
	running func() bool
	start   func(ctx context.Context) error
	ready   func(ctx context.Context) error
}

func (s *Stack) cluster() (*pgcluster.Cluster, error) {
	return pgcluster.New(s.Path("postgres"), s.PostgresPort(), DatabaseUser)
}

func (s *Stack) bin(name string) string { return filepath.Join(s.BinDir, name) }

func (s *Stack) proc(name, path string, env map[string]string, args ...string) component {
	return component{
		name:    name,
		running: func() bool { _, ok := s.Running(name); return ok },
		start: func(context.Context) error {
			_, err := s.Start(Proc{Name: name, Path: path, Env: env, Args: args})
			return err
		},
	}
}

func (s *Stack) components() []component {
	t := s.Topo
	var cs []component

	pg := component{
		name:  "postgres",
		ports: []int{s.PostgresPort()},
		running: func() bool {
			c, err := s.cluster()
			return err == nil && c.Initialized() && c.Running()
		},
		start: s.startPostgres,
		ready: s.postgresReady,
	}
	rd := s.proc("redis", programPath("redis-server"), nil, s.Path("config", "redis.conf"))
	rd.ports = []int{s.RedisPort()}
	rd.ready = s.redisReady
	cs = append(cs, pg, rd)

	mig := component{stage: 1, name: "db-migrate", running: func() bool { return false }, start: s.migrate}
	cs = append(cs, mig)

	for i := range t.AC {
		c := s.proc(fmt.Sprintf("ac-%d", i), s.bin("ac-service"), t.ACEnv(i))
		c.stage = 2
		c.ports = []int{t.AC[i]}
		c.ready = httpReady(t.ACURL(i) + "/ready")
		cs = append(cs, c)
	}
	for i := range t.GC {
		c := s.proc(fmt.Sprintf("gc-%d", i), s.bin("global-controller"), t.GCEnv(i))
		c.stage = 3 // readiness needs AC's JWKS
		c.ports = []int{t.GC[i].HTTP, t.GC[i].GRPC}
		c.ready = httpReady(t.GCHTTPURL(i) + "/ready")
		cs = append(cs, c)
	}
	for i := range t.MC {
		c := s.proc(fmt.Sprintf("mc-%d", i), s.bin("meeting-controller"), t.MCEnv(i))
		c.stage = 4 // readiness needs registration with GC
		c.ports = []int{t.MC[i].GRPC, t.MC[i].Health}
		c.udp = []int{t.MC[i].WebTransport}
		c.ready = httpReady(t.MCHealthURL(i) + "/health/ready")
		cs = append(cs, c)
	}

	re := s.proc("redis-exporter", programPath("prometheus-redis-exporter"), map[string]string{
		"REDIS_ADDR":     fmt.Sprintf("redis://127.0.0.1:%d", s.RedisPort()),
		"REDIS_PASSWORD": s.Secrets.RedisPassword,
	}, "-web.listen-address", fmt.Sprintf("127.0.0.1:%d", s.RedisExporterPort()), "-log-format", "json")
	re.stage = 2
	re.ports = []int{s.RedisExporterPort()}
	re.ready = httpReady(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.RedisExporterPort()))

	pe := s.proc("postgres-exporter", programPath("prometheus-postgres-exporter"), map[string]string{
		"DATA_SOURCE_NAME": t.DatabaseURL.Reveal(),
	}, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", s.PostgresExporterPort()), "--log.format", "json")
	pe.stage = 2
	pe.ports = []int{s.PostgresExporterPort()}
	pe.ready = httpReady(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.PostgresExporterPort()))

	pr := s.proc("prometheus", programPath("prometheus"), nil,
		"--config.file", s.Path("config", "prometheus.yml"),
		"--storage.tsdb.path", s.Path("prometheus"),
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", s.PrometheusPort()),
		"--web.enable-lifecycle", "--log.format", "json")
	// Prometheus starts first: its discovery sends the first targets only
	// about 5 s after start, which then overlaps with everything else.
	pr.stage = 0
	pr.ports = []int{s.PrometheusPort()}
	pr.ready = httpReady(s.PrometheusURL() + "/-/ready")

	// The verifier keeps checking in serve mode: a status page and the
	// verifier job's metrics.
	env := s.verifierEnv()
	env["VERIFIER_CONFIG"] = s.verifierConfigPath()
	vs := s.proc("verifier", s.bin("verifier"), env, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", s.VerifierPort()), "--interval", "15s")
	vs.stage = 2
	vs.ports = []int{s.VerifierPort()}
	vs.ready = httpReady(s.VerifierURL() + "/metrics")
	cs = append(cs, re, pe, pr, vs)
	return cs
}

// Ports lists the TCP and UDP ports the stack's processes listen on.
func (s *Stack) Ports() (tcp, udp []int) {
	for _, c := range s.components() {
		tcp = append(tcp, c.ports...)
		udp = append(udp, c.udp...)
	}
	return tcp, udp
}

// PrometheusURL is local Prometheus's base URL.
func (s *Stack) PrometheusURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.PrometheusPort()) }

func programPath(name string) string {
	for _, p := range Programs() {
		if p.Path == name || p.Name == name {
			if r := p.Resolve(); r != "" {
				return r
			}
		}
	}
	return name
}

// writeConfig renders the files the processes read. Secrets go into files
// with mode 0600, never onto command lines.
func (s *Stack) writeConfig() error {
	if err := os.MkdirAll(s.Path("config"), 0o755); err != nil {
		return err
	}
	if err := WriteClientsFile(s.Topo.ClientsFile, s.Secrets.Secrets()); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Path("redis"), 0o700); err != nil {
		return err
	}
	redisConf := strings.Join([]string{
		"# Generated by `make up`.",
		"bind 127.0.0.1",
		"port " + strconv.Itoa(s.RedisPort()),
		"dir " + s.Path("redis"),
		"appendonly yes",
		"appendfsync everysec",
		"daemonize no",
		"requirepass " + s.Secrets.RedisPassword,
		`rename-command FLUSHALL ""`,
		`rename-command FLUSHDB ""`,
		`rename-command DEBUG ""`,
	}, "\n") + "\n"
	if err := os.WriteFile(s.Path("config", "redis.conf"), []byte(redisConf), 0o600); err != nil {
		return err
	}
	// The same alert rules as the cluster's Prometheus.
	rules, err := observability.WriteRules(s.Path("config", "rules"))
	if err != nil {
		return err
	}
	prom := PrometheusConfig(s.ScrapeTargets(s.Topo, true), rules)
	if err := os.WriteFile(s.Path("config", "prometheus.yml"), []byte(prom), 0o644); err != nil {
		return err
	}
	return os.WriteFile(s.verifierConfigPath(), []byte(s.VerifierConfig(s.Topo)), 0o644)
}

// Up starts whatever is not running, in dependency order, waiting for each to
// be ready. It is safe to run again: running parts are left alone.
func (s *Stack) Up(ctx context.Context) error {
	if err := EnsurePrograms(s.Out); err != nil {
		return err
	}
	for _, b := range []string{"ac-service", "global-controller", "meeting-controller", "db-migrate", "verifier"} {
		if _, err := os.Stat(s.bin(b)); err != nil {
			return fmt.Errorf("%s is not built in %s: run `make build` (make up does this)", b, s.BinDir)
		}
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	// Check every port first, so a busy one is reported before anything starts.
	var todo []component
	for _, c := range s.components() {
		if c.running() {
			fmt.Fprintf(s.Out, "  %-18s already running\n", c.name)
			continue
		}
		for _, p := range c.ports {
			if err := CheckPort(p, false); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		for _, p := range c.udp {
			if err := CheckPort(p, true); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		todo = append(todo, c)
	}
	var mu sync.Mutex
	return byStage(todo, false, func(c component) error {
		began := time.Now()
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("%s: %w%s", c.name, err, s.tail(c.name))
		}
		if c.ready != nil {
			if err := waitFor(ctx, 60*time.Second, c.ready); err != nil {
				return fmt.Errorf("%s did not become ready: %w%s", c.name, err, s.tail(c.name))
			}
		}
		mu.Lock()
		fmt.Fprintf(s.Out, "  %-18s started (%.1fs)\n", c.name, time.Since(began).Seconds())
		mu.Unlock()
		return nil
	})
}

// byStage runs f on every component, the components of a stage at once,
// stage after stage (in reverse when reverse is set). It stops after the
// first stage with an error.
func byStage(cs []component, reverse bool, f func(component) error) error {
	stages := map[int][]component{}
	var order []int
	for _, c := range cs {
		if _, ok := stages[c.stage]; !ok {
			order = append(order, c.stage)
		}
		stages[c.stage] = append(stages[c.stage], c)
	}
	sort.Ints(order)
	if reverse {
		slices.Reverse(order)
	}
	for _, st := range order {
		var wg sync.WaitGroup
		errs := make([]error, len(stages[st]))
		for i, c := range stages[st] {
			wg.Go(func() { errs[i] = f(c) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// Down stops every process, stage by stage in reverse; data stays.
func (s *Stack) Down() error {
	var mu sync.Mutex
	var errs []error
	_ = byStage(s.components(), true, func(c component) error {
		var err error
		if c.name == "postgres" {
			if cl, cerr := s.cluster(); cerr == nil && cl.Initialized() {
				err = cl.Stop()
			}
		} else {
			err = s.Stop(c.name, 20*time.Second)
		}
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	for _, name := range s.Tracked() { // anything else a pid file names
		if err := s.Stop(name, 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clean stops everything and removes the state directory.
func (s *Stack) Clean() error {
	if err := s.Down(); err != nil {
		return err
	}
	return os.RemoveAll(s.StateDir)
}

func (s *Stack) startPostgres(ctx context.Context) error {
	c, err := s.cluster()
	if err != nil {
		return err
	}
	if !c.Initialized() {
		fmt.Fprintf(s.Out, "  %-18s initdb into %s\n", "postgres", c.DataDir())
		if err := c.Init(s.Secrets.PostgresPassword, false); err != nil {
			return err
		}
	}
	// After a crash the old backends may hold shared memory for a moment.
	if err := waitFor(ctx, 20*time.Second, func(context.Context) error {
		return c.Start("logging_collector=on", "log_destination=jsonlog", "log_directory="+c.Dir, "log_filename=postgres")
	}); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, s.ensureDatabase)
}

// ensureDatabase creates dark_tower on first start.
func (s *Stack) ensureDatabase(ctx context.Context) error {
	url := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", DatabaseUser, s.Secrets.PostgresPassword, s.PostgresPort())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres 127.0.0.1:%d: %w", s.PostgresPort(), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", DatabaseName).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+DatabaseName)
	}
	return err
}

func (s *Stack) postgresReady(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.Topo.DatabaseURL.Reveal())
	if err != nil {
		return fmt.Errorf("postgres 127.0.0.1:%d: %w", s.PostgresPort(), err)
	}
	return conn.Close(ctx)
}

func (s *Stack) redisReady(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.RedisPort()), Password: s.Secrets.RedisPassword})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// migrate runs db-migrate to completion; its output joins the logs.
func (s *Stack) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return s.RunOnce(ctx, Proc{Name: "db-migrate", Path: s.bin("db-migrate"), Env: s.Topo.MigrateEnv()})
}

// tail returns the last lines of a process's log for an error message.
func (s *Stack) tail(name string) string {
	path := s.LogFile(name)
	if name == "postgres" {
		path = filepath.Join(s.Path("postgres"), "postgres.json")
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\n  last lines of " + path + ":\n    " + strings.Join(lines, "\n    ")
}

func httpReady(url string) func(context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	}
}

// waitFor polls f until it succeeds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
