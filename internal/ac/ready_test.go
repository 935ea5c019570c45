package ac

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/testsupport"
)

// unreachablePool is a pool on a closed port; pgxpool connects lazily.
func unreachablePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := fmt.Sprintf("postgres://u:pw@127.0.0.1:%d/x?connect_timeout=1", testsupport.FreePort(t))
	pool, err := database.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReadyFollowsPostgres(t *testing.T) {
	pg, pool := migratedPostgres(t)
	mc := client(t, "meeting-controller", auth.ServiceMeetingController, auth.ScopeWriteGC)
	ac := startAC(t, pool, newSeed(t), nil)

	// Before the clients are synced AC is live but not ready, and refuses
	// to issue tokens rather than answering invalid_client.
	if got := status(t, ac.url+"/health"); got != 200 {
		t.Fatalf("/health = %d", got)
	}
	if got := status(t, ac.url+"/ready"); got != 503 {
		t.Fatalf("/ready before sync = %d, want 503", got)
	}
	if _, err := ccToken(ac.url, mc, 0); err == nil {
		t.Fatal("token issued before sync")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ac.svc.SyncWithRetry(ctx, []Client{mc}, pg.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := testsupport.WaitHTTP(ac.url+"/ready", 200, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	pg.Stop()
	if err := testsupport.WaitHTTP(ac.url+"/ready", 503, 15*time.Second); err != nil {
		t.Fatalf("Postgres stopped: %v", err)
	}
	if got := status(t, ac.url+"/health"); got != 200 {
		t.Fatalf("/health with Postgres down = %d, want 200 (liveness must not follow dependencies)", got)
	}
	_, err := ccToken(ac.url, mc, 0)
	retrieveError(t, err, 500, "server_error")

	pg.Start()
	if err := testsupport.WaitHTTP(ac.url+"/ready", 200, 30*time.Second); err != nil {
		t.Fatalf("Postgres restarted: %v", err)
	}
	if _, err := ccToken(ac.url, mc, 0); err != nil {
		t.Fatalf("token after Postgres restart: %v", err)
	}
	if v := metricValue(t, scrape(t, ac.url), `ac_token_issuance_total{status="error"}`); v < 2 {
		t.Fatalf("error count %v, want >= 2 (before sync, database down)", v)
	}
}

func TestSyncWithRetryWaitsForDatabase(t *testing.T) {
	pool := unreachablePool(t)
	ac := startAC(t, pool, newSeed(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := ac.svc.SyncWithRetry(ctx, []Client{client(t, "x", auth.ServiceVerifier, auth.ScopeReadGC)}, "127.0.0.1:closed")
	if err == nil {
		t.Fatal("sync against a closed port succeeded")
	}
	if n := len(ac.logLines("cannot sync service clients yet, retrying")); n < 2 {
		t.Fatalf("%d retry log lines, want >= 2:\n%s", n, ac.logs.String())
	}
	if got := status(t, ac.url+"/ready"); got != 503 {
		t.Fatalf("/ready = %d, want 503", got)
	}
}
