package testsupport

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Exporter is a Prometheus exporter on a loopback port.
type Exporter struct {
	*External
	Addr string // host:port of its /metrics
}

// StartRedisExporter runs Debian's prometheus-redis-exporter for r; the
// password reaches it through REDIS_PASSWORD, never an argument.
func StartRedisExporter(t testing.TB, r *Redis) *Exporter {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	env := map[string]string{"REDIS_ADDR": "redis://" + r.Addr()}
	if r.Password != "" {
		env["REDIS_PASSWORD"] = r.Password
	}
	e := &Exporter{Addr: addr, External: StartExternal(t, "redis_exporter", "/usr/bin/prometheus-redis-exporter",
		[]string{"-web.listen-address=" + addr}, env)}
	e.wait(t)
	return e
}

// StartPostgresExporter runs Debian's prometheus-postgres-exporter for p;
// the password reaches it through DATA_SOURCE_PASS, never an argument.
func StartPostgresExporter(t testing.TB, p *Postgres) *Exporter {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	env := map[string]string{
		"DATA_SOURCE_URI":  p.Addr() + "/" + p.Database + "?sslmode=disable",
		"DATA_SOURCE_USER": p.User,
		"DATA_SOURCE_PASS": p.Password,
	}
	e := &Exporter{Addr: addr, External: StartExternal(t, "postgres_exporter", "/usr/bin/prometheus-postgres-exporter",
		[]string{"--web.listen-address=" + addr, "--log.level=warn"}, env)}
	e.wait(t)
	return e
}

func (e *Exporter) wait(t testing.TB) {
	t.Helper()
	if err := WaitHTTP("http://"+e.Addr+"/metrics", http.StatusOK, 20*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", e.Name, err, e.Logs())
	}
}

// Restart starts the exporter again after Stop.
func (e *Exporter) Restart(t testing.TB) {
	t.Helper()
	e.Start()
	e.wait(t)
}
