package datastores

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/e2e/e2eutil"
)

// TestRedisTruncatedAOF: issue 14 item 6. Redis started on an AOF with a
// torn tail, cut it off (aof-load-truncated yes) and so lost a meeting;
// INFO says nothing of it. redis.persistence reads Redis's log and fails
// for as long as that server runs.
func TestRedisTruncatedAOF(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "redis.log")
	r := testsupport.StartRedis(t, testsupport.RedisConfig("dir "+dir, "logfile "+logFile))
	ctx := context.Background()
	c := r.Client(t)
	for i := range 5 {
		if err := c.Set(ctx, fmt.Sprintf("meeting:%d", i), "mc-1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r.Stop()
	// The fault: the last command half written, as a crash or a full disk
	// leaves it.
	incr, _ := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if len(incr) != 1 {
		t.Fatalf("want one incremental AOF in %s, found %v", dir, incr)
	}
	fi, err := os.Stat(incr[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(incr[0], fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	r.Start()
	if n, err := c.Exists(ctx, "meeting:4").Result(); err != nil || n != 0 {
		t.Fatalf("meeting:4 after the torn tail: exists=%d err=%v; the fault did not happen\n%s", n, err, r.Log())
	}

	cfg := e2eutil.Base(30*time.Second).With("redis", map[string]any{"address": r.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD"),
		"log_file": logFile, "data_dir": dir})
	env := map[string]string{"REDIS_PASSWORD": r.Password}
	checks := []string{"redis.reachable", "redis.auth-enforced", "redis.persistence"}
	res := e2eutil.Run(t, cfg, env, "run", "--output", "json")
	e2eutil.Expect(t, res, 1, map[string]classify.Class{"redis.persistence": classify.RedisAOFTruncated}, checks...)
	e2eutil.NoSecrets(t, res, map[string]string{"redis password": r.Password})
	if c := res.Check("redis.persistence"); !strings.Contains(c.Error, "Truncating the AOF") || !strings.Contains(c.Class.Next, logFile) || res.Elapsed > 10*time.Second {
		t.Errorf("want the log line in the error, the log in the next command and a prompt verdict; got %q, next %q after %v", c.Error, c.Class.Next, res.Elapsed)
	}

	// The verdict is about the server that cut its AOF: the next start
	// loads the (already cut) file whole, and the check passes again.
	r.Stop()
	r.Start()
	res = e2eutil.Run(t, cfg, env, "run", "--output", "json")
	e2eutil.Expect(t, res, 0, nil, checks...)
	if ev := res.Check("redis.persistence").Evidence; !strings.Contains(ev, "no AOF truncated at start") || !strings.Contains(ev, " free of ") {
		t.Errorf("evidence %q: want the log read and the data directory's free space", ev)
	}
}

// TestDiskFull: issue 14 item 7. With the data directories on a full
// tmpfs, Postgres inserts and Prometheus's scrape commits fail while the
// servers still answer and scrape. postgres.storage finds the failed
// writes in the server log, prometheus.storage in Prometheus's own TSDB
// counters, and redis.persistence, which has not written yet, the
// directory's free space.
func TestDiskFull(t *testing.T) {
	state := t.TempDir()
	e2eutil.Tmpfs(t, state, 50<<20)

	redisDir := filepath.Join(state, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		t.Fatal(err)
	}
	rd := testsupport.StartRedis(t, testsupport.RedisConfig("dir "+redisDir))

	// Postgres logs like local mode (jsonlog through the collector) and
	// keeps a table in a tablespace on the tmpfs.
	pg := testsupport.StartPostgres(t)
	migrate(t, pg.URL(), 0)
	pg.Exec(t, "ALTER SYSTEM SET logging_collector = on")
	pg.Exec(t, "ALTER SYSTEM SET log_destination = 'jsonlog'")
	pg.Stop()
	pg.Start()
	pgDir := filepath.Join(state, "postgres")
	owner := ownerOf(t, pg.DataDir())
	if err := os.Mkdir(pgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(pgDir, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "CREATE TABLESPACE state LOCATION '"+pgDir+"'")
	pg.Exec(t, "CREATE TABLE notes (body text) TABLESPACE state")

	// Prometheus scrapes itself, its TSDB on a tmpfs of its own.
	prom := testsupport.StartPrometheus(t)
	prom.SetJobs(t, testsupport.ScrapeJob{Name: "prometheus", Targets: []string{strings.TrimPrefix(prom.URL, "http://")}})
	tsdb := tsdbPath(t, prom.URL)
	prom.Stop()
	e2eutil.Tmpfs(t, tsdb, 16<<20, prom.Stop)
	prom.Restart(t)

	e2eutil.Fill(t, state)
	e2eutil.Fill(t, tsdb)
	// The faults are real: an insert fails with SQLSTATE 53100 and
	// Prometheus's scrape commits fail.
	_, err := pg.Conn(t).Exec(context.Background(), "INSERT INTO notes SELECT repeat('x', 2000) FROM generate_series(1, 1000)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53100" {
		t.Fatalf("insert on a full tablespace: %v, want SQLSTATE 53100", err)
	}
	testsupport.Eventually(t, 60*time.Second, "a failed WAL write in Prometheus", func() error {
		if n := walWritesFailed(prom.URL); n == 0 {
			return errors.New("prometheus_tsdb_wal_writes_failed_total is 0")
		}
		return nil
	})

	cfg := e2eutil.Base(30*time.Second).
		With("redis", map[string]any{"address": rd.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD"), "data_dir": redisDir}).
		With("postgres", map[string]any{"url": e2eutil.Ref("DATABASE_URL"), "data_dir": pgDir}).
		With("prometheus", map[string]any{"url": prom.URL, "data_dir": tsdb, "jobs": []map[string]any{{"name": "prometheus"}}})
	env := map[string]string{"REDIS_PASSWORD": rd.Password, "DATABASE_URL": pg.URL()}
	res := e2eutil.Run(t, cfg, env, "run", "--output", "json")
	e2eutil.Expect(t, res, 1, map[string]classify.Class{
		"redis.persistence":  classify.LocalDiskFull,
		"postgres.storage":   classify.PostgresWriteFailed,
		"prometheus.storage": classify.PrometheusTSDBWriteFailed,
	}, allChecks...)
	e2eutil.NoSecrets(t, res, map[string]string{"redis password": rd.Password, "postgres password": pg.Password})
	t.Logf("%v exit %d: %s", res.Elapsed.Round(time.Millisecond), res.Exit, e2eutil.Statuses(res))
	for id, want := range map[string]string{
		"redis.persistence":  redisDir + ": 0 B free",
		"postgres.storage":   "No space left on device",
		"prometheus.storage": "prometheus_tsdb_wal_writes_failed_total",
	} {
		if c := res.Check(id); !strings.Contains(c.Error+" "+c.Evidence, want) {
			t.Errorf("%s: want %q in the error or evidence; error %q, evidence %q", id, want, c.Error, c.Evidence)
		}
	}
	if res.Elapsed > 15*time.Second {
		t.Errorf("the verdicts are definite, yet the run took %v", res.Elapsed)
	}
}

func ownerOf(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// tsdbPath asks Prometheus where its TSDB is (the fixture chose it).
func tsdbPath(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/status/flags")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Data map[string]string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Data["storage.tsdb.path"] == "" {
		t.Fatalf("prometheus flags: %v %v", err, doc.Data)
	}
	return doc.Data["storage.tsdb.path"]
}

// walWritesFailed reads prometheus_tsdb_wal_writes_failed_total (0 when
// it cannot).
func walWritesFailed(base string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = io.Copy(b, resp.Body)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "prometheus_tsdb_wal_writes_failed_total "); ok {
			var n float64
			_, _ = fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}
