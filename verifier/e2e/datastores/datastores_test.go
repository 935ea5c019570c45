// Package datastores runs the verifier binary against real Redis, Postgres
// and Prometheus (scraping real exporters) and injects one fault at a time.
package datastores

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/e2e/e2eutil"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

var allChecks = []string{"redis.reachable", "redis.auth-enforced", "redis.persistence",
	"postgres.reachable", "postgres.schema", "postgres.storage", "prometheus.ready", "prometheus.targets", "prometheus.storage"}

type fixture struct {
	pg      *testsupport.Postgres
	redis   *testsupport.Redis
	redisX  *testsupport.Exporter
	pgX     *testsupport.Exporter
	prom    *testsupport.Prometheus
	secrets map[string]string
}

func migrate(t *testing.T, url string, target uint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := database.Migrate(ctx, url, target); err != nil {
		t.Fatalf("migrate %s to %d: %v", database.Target(url), target, err)
	}
}

func start(t *testing.T) *fixture {
	f := &fixture{pg: testsupport.StartPostgres(t), redis: testsupport.StartRedis(t)}
	migrate(t, f.pg.URL(), 0)
	f.pg.Exec(t, "CREATE DATABASE behind")
	f.pg.Exec(t, "CREATE DATABASE dirty")
	migrate(t, f.pg.URLFor(f.pg.User, f.pg.Password, "behind"), 2)
	migrate(t, f.pg.URLFor(f.pg.User, f.pg.Password, "dirty"), 0)
	dirty := f.pg.URLFor(f.pg.User, f.pg.Password, "dirty")
	f.redisX = testsupport.StartRedisExporter(t, f.redis)
	f.pgX = testsupport.StartPostgresExporter(t, f.pg)
	f.prom = testsupport.StartPrometheus(t,
		testsupport.ScrapeJob{Name: "redis_exporter", Targets: []string{f.redisX.Addr}},
		testsupport.ScrapeJob{Name: "postgres_exporter", Targets: []string{f.pgX.Addr}, Interval: 2 * time.Second},
	)
	// A migration that failed half-way: what golang-migrate leaves behind.
	markDirty(t, dirty)
	f.secrets = map[string]string{"redis password": f.redis.Password, "postgres password": f.pg.Password}
	return f
}

func markDirty(t *testing.T, url string) {
	t.Helper()
	// The test writes this fault itself; the verifier only reads.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "UPDATE "+database.VersionTable+" SET dirty = true"); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) config(deadline time.Duration) e2eutil.Config {
	return e2eutil.Base(deadline).
		With("redis", map[string]any{"address": f.redis.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD")}).
		With("postgres", map[string]any{"url": e2eutil.Ref("DATABASE_URL")}).
		With("prometheus", map[string]any{"url": f.prom.URL, "jobs": []map[string]any{
			{"name": "redis_exporter", "min_targets": 1}, {"name": "postgres_exporter"}}})
}

func (f *fixture) env() map[string]string {
	return map[string]string{"REDIS_PASSWORD": f.redis.Password, "DATABASE_URL": f.pg.URL()}
}

func merge(a map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func redisAt(addr string) map[string]any {
	return map[string]any{"address": addr, "password": e2eutil.Ref("REDIS_PASSWORD")}
}

// TestDatastoreFaults: the healthy set passes; each fault alone fails
// exactly its check with the right class, and the rest pass or are blocked.
func TestDatastoreFaults(t *testing.T) {
	f := start(t)
	noPass := testsupport.StartRedis(t, testsupport.RedisNoPassword())
	noAOF := testsupport.StartRedis(t, testsupport.RedisConfig("appendonly no"))
	down := testsupport.StartRedis(t)
	down.Stop()

	const definite = 30 * time.Second // definite failures must end long before this
	const short = 3 * time.Second     // transient failures run out this deadline

	run := func(t *testing.T, cfg e2eutil.Config, env map[string]string, exit int, failing map[string]classify.Class) e2eutil.Result {
		t.Helper()
		r := e2eutil.Run(t, cfg, env, "run", "--output", "json")
		e2eutil.Expect(t, r, exit, failing, allChecks...)
		e2eutil.NoSecrets(t, r, f.secrets)
		t.Logf("%v exit %d: %s", r.Elapsed.Round(time.Millisecond), r.Exit, e2eutil.Statuses(r))
		return r
	}

	t.Run("healthy", func(t *testing.T) {
		run(t, f.config(definite), f.env(), 0, nil)
	})
	t.Run("wrong redis password", func(t *testing.T) {
		r := run(t, f.config(definite), merge(f.env(), "REDIS_PASSWORD", "not-the-password"), 1,
			map[string]classify.Class{"redis.reachable": classify.RedisWrongPassword})
		if r.Elapsed > 5*time.Second || r.Check("redis.reachable").Attempts != 2 || !r.Check("redis.reachable").EndedDefinite {
			t.Errorf("a definite WRONGPASS took %v and %d attempts; want two attempts and an early end", r.Elapsed, r.Check("redis.reachable").Attempts)
		}
	})
	t.Run("redis requiring no password", func(t *testing.T) {
		run(t, f.config(definite).With("redis", redisAt(noPass.Addr())), f.env(), 1,
			map[string]classify.Class{"redis.auth-enforced": classify.RedisAuthNotEnforced})
	})
	t.Run("aof off", func(t *testing.T) {
		run(t, f.config(definite).With("redis", redisAt(noAOF.Addr())), merge(f.env(), "REDIS_PASSWORD", noAOF.Password), 1,
			map[string]classify.Class{"redis.persistence": classify.RedisAOFOff})
	})
	t.Run("redis down", func(t *testing.T) {
		r := run(t, f.config(short).With("redis", redisAt(down.Addr())), f.env(), 3,
			map[string]classify.Class{"redis.reachable": classify.NetRefused})
		if r.Check("redis.reachable").Attempts < 3 {
			t.Errorf("connection refused is transient: want retries, got %d attempts", r.Check("redis.reachable").Attempts)
		}
	})
	t.Run("wrong postgres password", func(t *testing.T) {
		r := run(t, f.config(definite), merge(f.env(), "DATABASE_URL", f.pg.URLFor(f.pg.User, "wrong-pw-1234", f.pg.Database)), 1,
			map[string]classify.Class{"postgres.reachable": classify.PostgresWrongPassword})
		if r.Elapsed > 5*time.Second {
			t.Errorf("SQLSTATE 28P01 is definite, yet the run took %v", r.Elapsed)
		}
	})
	t.Run("database missing", func(t *testing.T) {
		run(t, f.config(definite), merge(f.env(), "DATABASE_URL", f.pg.URLFor(f.pg.User, f.pg.Password, "no_such_db")), 1,
			map[string]classify.Class{"postgres.reachable": classify.PostgresDatabaseMissing})
	})
	t.Run("migrations behind", func(t *testing.T) {
		r := run(t, f.config(short), merge(f.env(), "DATABASE_URL", f.pg.URLFor(f.pg.User, f.pg.Password, "behind")), 3,
			map[string]classify.Class{"postgres.schema": classify.PostgresSchemaBehind})
		want, _ := database.EmbeddedVersion()
		if ev := r.Check("postgres.schema").Evidence; ev != fmt.Sprintf("version 2 (embedded %d), dirty=false", want) {
			t.Errorf("evidence %q", ev)
		}
	})
	t.Run("migration dirty", func(t *testing.T) {
		run(t, f.config(definite), merge(f.env(), "DATABASE_URL", f.pg.URLFor(f.pg.User, f.pg.Password, "dirty")), 1,
			map[string]classify.Class{"postgres.schema": classify.PostgresSchemaDirty})
	})
	t.Run("expected job without targets", func(t *testing.T) {
		cfg := f.config(short).With("prometheus", map[string]any{"url": f.prom.URL, "jobs": []map[string]any{
			{"name": "redis_exporter"}, {"name": "postgres_exporter"}, {"name": "meeting-controller", "min_targets": 2}}})
		run(t, cfg, f.env(), 3, map[string]classify.Class{"prometheus.targets": classify.PrometheusJobMissing})
	})
	t.Run("prometheus target down", func(t *testing.T) {
		f.redisX.Stop()
		defer f.redisX.Restart(t)
		r := run(t, f.config(short), f.env(), 3, map[string]classify.Class{"prometheus.targets": classify.PrometheusTargetRefused})
		if ev := r.Check("prometheus.targets").Error; !strings.Contains(ev, f.redisX.Addr) {
			t.Errorf("the error should name the down target %s: %s", f.redisX.Addr, ev)
		}
	})
	t.Run("prometheus down", func(t *testing.T) {
		f.prom.Stop()
		defer f.prom.Restart(t)
		run(t, f.config(short), f.env(), 3, map[string]classify.Class{"prometheus.ready": classify.NetRefused})
	})
	t.Run("postgres down", func(t *testing.T) {
		f.pg.Stop()
		defer f.pg.Start()
		// Longer than short: Prometheus was restarted by the previous case, and
		// prometheus.targets must see a scrape newer than this run's start, which
		// a loaded machine was seen to take more than 3 s for.
		run(t, f.config(10*time.Second), f.env(), 3, map[string]classify.Class{"postgres.reachable": classify.NetRefused})
	})
}

// TestRedisStartedLate: a transient failure passes once Redis is up.
func TestRedisStartedLate(t *testing.T) {
	r := testsupport.StartRedis(t)
	r.Stop()
	cfg := e2eutil.Base(30*time.Second).With("redis", map[string]any{"address": r.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD")})
	testsupport.Binary(t, "verifier") // built before the clock starts
	done := make(chan e2eutil.Result, 1)
	go func() {
		done <- e2eutil.Run(t, cfg, map[string]string{"REDIS_PASSWORD": r.Password}, "run", "--output", "json")
	}()
	time.Sleep(2 * time.Second) // the fault: Redis comes up a few seconds late
	r.Start()
	res := <-done
	e2eutil.Expect(t, res, 0, nil, "redis.reachable", "redis.auth-enforced", "redis.persistence")
	if a := res.Check("redis.reachable").Attempts; a < 2 {
		t.Errorf("redis.reachable passed after %d attempts; it should have retried while Redis was down", a)
	}
	if res.Elapsed > 10*time.Second {
		t.Errorf("passing took %v; Redis was up after ~2s", res.Elapsed)
	}
	// Read-only: this Redis saw only the verifier (and this query), so its
	// command statistics list every command the verifier sent.
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	// HELLO is go-redis's connection handshake (protocol version and AUTH).
	allowed := map[string]bool{"hello": true, "auth": true, "ping": true, "info": true}
	for _, line := range strings.Split(stats, "\n") {
		if name, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":"); ok && !strings.HasPrefix(line, "#") {
			if !allowed[name] {
				t.Errorf("the verifier sent %q to Redis; it may only read (HELLO, AUTH, PING, INFO)", name)
			}
		}
	}
	if !strings.Contains(stats, "cmdstat_ping") {
		t.Errorf("no PING in the command statistics: the check proves nothing\n%s", stats)
	}
}
