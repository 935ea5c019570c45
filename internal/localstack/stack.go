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
	"github.com/darktower/devstack/internal/procs"
	"github.com/darktower/devstack/internal/secret"
)

// Stack is a local stack: its layout, secrets and our binaries.
type Stack struct {
	Layout
	BinDir  string // where ac-service, global-controller, ... are built
	Out     io.Writer
	Secrets StoredSecrets
	Topo    *Topology
	noStack error // why there is no stack yet (ErrNoStack), nil when there is
}

// Open reads the state directory's secrets and configuration and writes
// nothing: without a stack (before the first `make up`, after `make clean`)
// the secrets are empty and Exists says why; Up creates them.
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
	s := &Stack{Layout: l, BinDir: binDir, Out: out}
	st, err := l.LoadSecrets()
	if errors.Is(err, ErrNoStack) {
		s.noStack = err
	} else if err != nil {
		return nil, err
	}
	s.useSecrets(st)
	return s, nil
}

func (s *Stack) useSecrets(st StoredSecrets) {
	s.Secrets = st
	s.Topo = s.Topology(st.Secrets(), secret.New(st.PostgresPassword), secret.New(st.RedisPassword))
}

// Exists returns nil when the state directory holds a stack (its secrets),
// else an error saying there is none.
func (s *Stack) Exists() error { return s.noStack }

// CreateSecrets creates the stack's secrets on first run (LoadOrCreateSecrets);
// `devstack up` calls it holding the state directory's lock.
func (s *Stack) CreateSecrets() error {
	st, err := s.LoadOrCreateSecrets()
	if err != nil {
		return err
	}
	s.useSecrets(st)
	s.noStack = nil
	return nil
}

// component is one part of the stack in start order.
type component struct {
	stage   int // components of one stage start together, after the stage before
	name    string
	ports   []int
	udp     []int
	state   func() procs.State // what its pid file says, identity checked
	running func() bool        // state().Running
	start   func(ctx context.Context) error
	ready   func(ctx context.Context) error
	// exited says how the process ended when it died after start, while
	// this command still waits for it; "" while it runs.
	exited func() string
}

func (s *Stack) cluster() (*pgcluster.Cluster, error) {
	return pgcluster.New(s.Path("postgres"), s.PostgresPort(), DatabaseUser)
}

func (s *Stack) bin(name string) string { return filepath.Join(s.BinDir, name) }

func (s *Stack) proc(name, path string, env map[string]string, args ...string) component {
	var child *procs.Child
	return component{
		name:    name,
		state:   func() procs.State { return s.Check(name) },
		running: func() bool { return s.Check(name).Running },
		start: func(context.Context) error {
			var err error
			child, err = s.Launch(Proc{Name: name, Path: path, Env: env, Args: args})
			return err
		},
		exited: func() string {
			if child == nil {
				return ""
			}
			return child.Status()
		},
	}
}

func (s *Stack) components() []component {
	t := s.Topo
	var cs []component

	// Only starting Postgres goes through pgcluster (pg_ctl as the server
	// user, which may change the state directory's parents): its state and
	// its stop read and signal the postmaster directly, identity checked.
	pg := component{
		name:    "postgres",
		ports:   []int{s.PostgresPort()},
		state:   s.postgresState,
		running: func() bool { return s.postgresState().Running },
		start:   s.startPostgres,
		ready:   s.postgresReady,
		exited: func() string {
			if st := s.postgresState(); !st.Running {
				return st.Reason
			}
			return ""
		},
	}
	rd := s.proc("redis", programPath("redis-server"), nil, s.Path("config", "redis.conf"))
	rd.ports = []int{s.RedisPort()}
	rd.ready = s.redisReady
	cs = append(cs, pg, rd)

	mig := component{stage: 1, name: "db-migrate", running: func() bool { return false }, start: s.migrate,
		state: func() procs.State { return procs.State{Reason: "runs once per up"} }}
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
		// Its process title would overwrite the environment, and with it
		// the marker that finds a Redis a killed devstack left unrecorded.
		"set-proc-title no",
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
	// pgcluster writes the superuser's password there for initdb and removes
	// it after; a devstack killed during initdb left it behind.
	if err := os.Remove(s.Path("postgres", ".pwfile")); err == nil {
		fmt.Fprintf(s.Out, "  %-18s removed the password file an interrupted initdb left behind\n", "postgres")
	}
	if err := s.stopUnrecorded(s.Out); err != nil {
		return err
	}
	// Check every port first, so a busy one is reported before anything starts.
	var todo []component
	for _, c := range s.components() {
		st := c.state()
		if st.Running {
			fmt.Fprintf(s.Out, "  %-18s already running\n", c.name)
			continue
		}
		if st.Stale && c.name != "postgres" { // startPostgres deals with its own
			fmt.Fprintf(s.Out, "  %-18s %s; left alone\n", c.name, st.Reason)
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
		mark := s.logMark(c.name)
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("%s: %w%s", c.name, err, s.tailSince(c.name, mark))
		}
		if c.ready != nil {
			// A process that dies while being waited for is reported at
			// once, with how it ended and what it wrote this time.
			err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
				if how := c.exited(); how != "" {
					return permanent{fmt.Errorf("%s exited while starting: %s", c.name, how)}
				}
				return c.ready(ctx)
			})
			var p permanent
			if errors.As(err, &p) {
				return fmt.Errorf("%w%s", p.error, s.tailSince(c.name, mark))
			}
			if err != nil {
				return fmt.Errorf("%s did not become ready: %w%s", c.name, err, s.tailSince(c.name, mark))
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
			err = s.stopPostgres()
		} else {
			if st := s.Check(c.name); st.Stale {
				mu.Lock()
				fmt.Fprintf(s.Out, "  %-18s %s; left alone\n", c.name, st.Reason)
				mu.Unlock()
			}
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
	if err := s.stopUnrecorded(s.Out); err != nil {
		errs = append(errs, err)
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
	if st := s.postgresState(); st.Stale {
		if err := s.clearStalePostmasterPid(st); err != nil {
			return err
		}
	}
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
	// After a crash the old backends may hold shared memory, and the old
	// postmaster's pid may be a zombie init has not reaped, for a moment;
	// any other failure is final (the caller shows what the server wrote).
	mark := s.logMark("postgres")
	if err := waitFor(ctx, 20*time.Second, func(context.Context) error {
		err := c.Start("logging_collector=on", "log_destination=jsonlog", "log_directory="+c.Dir, "log_filename=postgres")
		said := s.tailSince("postgres", mark)
		if err != nil && !strings.Contains(said, "shared memory") && !strings.Contains(said, `lock file "postmaster.pid" already exists`) {
			return permanent{err}
		}
		return err
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

// logsOf are the files a process writes: Postgres writes to postgres.log
// (pg_ctl -l) until its logging collector runs, then to postgres.json.
func (s *Stack) logsOf(name string) []string {
	if name == "postgres" {
		return []string{s.Path("postgres", "postgres.log"), s.Path("postgres", "postgres.json")}
	}
	return []string{s.LogFile(name)}
}

// logMark records how long each of a process's logs is, for tailSince.
func (s *Stack) logMark(name string) map[string]int64 {
	m := map[string]int64{}
	for _, p := range s.logsOf(name) {
		if fi, err := os.Stat(p); err == nil {
			m[p] = fi.Size()
		}
	}
	return m
}

// tail returns the last lines of the log a process wrote last, for an
// error message.
func (s *Stack) tail(name string) string {
	var newest string
	var at time.Time
	for _, p := range s.logsOf(name) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 && !fi.ModTime().Before(at) {
			newest, at = p, fi.ModTime()
		}
	}
	if newest == "" {
		return ""
	}
	return s.tailSince(name, map[string]int64{}, newest)
}

// tailSince returns the last lines each of a process's logs got after
// mark (logMark), or says that it wrote nothing; only is a subset of files.
func (s *Stack) tailSince(name string, mark map[string]int64, only ...string) string {
	var out string
	for _, p := range s.logsOf(name) {
		if len(only) > 0 && !slices.Contains(only, p) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || int64(len(b)) <= mark[p] {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b[mark[p]:]), "\n"), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		out += "\n  last lines of " + p + ":\n    " + strings.Join(lines, "\n    ")
	}
	if out == "" {
		return "\n  (nothing new in " + strings.Join(s.logsOf(name), " or ") + ")"
	}
	return out
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

// permanent is an error waitFor does not retry: waiting cannot help.
type permanent struct{ error }

// waitFor polls f until it succeeds, fails for good (permanent) or timeout
// passes.
func waitFor(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if errors.As(err, new(permanent)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
