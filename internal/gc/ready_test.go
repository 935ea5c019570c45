package gc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/testsupport"
)

// TestRegisteredGaugeAndReadiness checks gc_registered_controllers against
// the table, then stops Postgres: /ready turns 503 while /health stays 200,
// and both recover when Postgres is back.
func TestRegisteredGaugeAndReadiness(t *testing.T) {
	pg := migratedPostgres(t)
	e := startGC(t, pg, nil)
	mc := client(t, e.grpcAddr, e.mcToken(t))
	ctx := ctxT(t)
	for _, id := range []string{"p1", "p2", "h1", "d1"} {
		if _, err := mc.RegisterMC(ctx, regReq(id, "g")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mc.FastHeartbeat(ctx, fastHB("h1", 0, healthy)); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.FastHeartbeat(ctx, fastHB("d1", 0, degraded)); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pending": 2, "healthy": 1, "degraded": 1, "unhealthy": 0, "draining": 0}
	_, body := httpDo(t, "GET", e.httpURL+"/metrics", "")
	for h, n := range want {
		line := fmt.Sprintf("gc_registered_controllers{status=%q} %d\n", h, n)
		if !strings.Contains(body, line) {
			t.Errorf("metrics lack %q; have:\n%s", line, grepLines(body, "gc_registered_controllers"))
		}
	}
	for _, m := range []string{`gc_heartbeats_total{status="ok",type="fast"} 2`, `gc_registrations_total{status="ok"} 4`,
		`gc_heartbeats_total{status="not_found",type="comprehensive"} 0`, `gc_meeting_joins_total{status="unavailable"} 0`,
		"gc_deregistrations_total 0", "gc_stale_controllers_marked_total 0",
		`grpc_server_handled_total{grpc_code="OK",grpc_method="RegisterMC"`} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	pg.Stop()
	if err := testsupport.WaitHTTP(e.httpURL+"/ready", 503, 10*time.Second); err != nil {
		t.Fatalf("with Postgres stopped: %v", err)
	}
	if code, _ := httpDo(t, "GET", e.httpURL+"/health", ""); code != 200 {
		t.Fatalf("/health = %d while Postgres is down, want 200", code)
	}
	code, body := httpDo(t, "GET", e.httpURL+"/metrics", "")
	if code != 200 || strings.Contains(body, "gc_registered_controllers{") {
		t.Fatalf("/metrics while Postgres is down = %d; the registry gauge must be absent, not made up:\n%s", code, grepLines(body, "gc_registered"))
	}
	pg.Start()
	if err := testsupport.WaitHTTP(e.httpURL+"/ready", 200, 15*time.Second); err != nil {
		t.Fatalf("after Postgres restart: %v", err)
	}
}
