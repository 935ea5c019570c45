package gc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/testsupport"
)

func healthOf(t testing.TB, e *gcEnv, id string) string {
	t.Helper()
	var h string
	err := e.pool.QueryRow(ctxT(t), `SELECT health_status FROM meeting_controllers WHERE controller_id = $1`, id).Scan(&h)
	if err != nil {
		return "absent"
	}
	return h
}

// TestStaleness runs the real sweeper with a 1 s threshold: a controller that
// stops heartbeating turns unhealthy, a draining one vanishes, and one that
// keeps heartbeating stays healthy.
func TestStaleness(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) {
		c.StalenessThreshold, c.StalenessInterval = time.Second, 100*time.Millisecond
	})
	mc := client(t, e.grpcAddr, e.mcToken(t))
	ctx := ctxT(t)
	for _, id := range []string{"mc-silent", "mc-draining", "mc-alive"} {
		if _, err := mc.RegisterMC(ctx, regReq(id, "stale")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mc.FastHeartbeat(ctx, fastHB("mc-silent", 1, healthy)); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.FastHeartbeat(ctx, fastHB("mc-draining", 1, draining)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if _, err := mc.FastHeartbeat(context.Background(), fastHB("mc-alive", 1, healthy)); err != nil {
				t.Errorf("keep-alive heartbeat: %v", err)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	testsupport.Eventually(t, 10*time.Second, "silent controller marked unhealthy and draining one removed", func() (bool, string) {
		s, d := healthOf(t, e, "mc-silent"), healthOf(t, e, "mc-draining")
		return s == "unhealthy" && d == "absent", fmt.Sprintf("mc-silent %s, mc-draining %s", s, d)
	})
	if h := healthOf(t, e, "mc-alive"); h != "healthy" {
		t.Fatalf("heartbeating controller is %s, want healthy", h)
	}
	_, body := httpDo(t, "GET", e.httpURL+"/metrics", "")
	if !strings.Contains(body, "gc_stale_controllers_marked_total 1\n") {
		t.Fatalf("metrics lack gc_stale_controllers_marked_total 1:\n%s", grepLines(body, "gc_stale"))
	}
	// A fresh heartbeat brings the silent controller back to what it reports.
	if _, err := mc.FastHeartbeat(ctx, fastHB("mc-silent", 1, healthy)); err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, e, "mc-silent"); h != "healthy" {
		t.Fatalf("after a new heartbeat mc-silent is %s, want healthy", h)
	}
}

// TestSweepRetention: unhealthy rows without a heartbeat for the retention
// period are deleted; younger ones and controllers that report unhealthy
// themselves while still heartbeating are kept.
func TestSweepRetention(t *testing.T) {
	pg := migratedPostgres(t)
	pool, err := database.Connect(context.Background(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := NewStore(pool)
	insertRows(t, pg, "old", 1, "unhealthy", "2 hours")
	insertRows(t, pg, "young", 1, "unhealthy", "10 minutes")
	insertRows(t, pg, "self", 1, "unhealthy", "0 seconds")
	r, err := s.Sweep(ctxT(t), 30*time.Second, time.Hour)
	if err != nil || !r.Ran || r.UnhealthyPurged != 1 || r.MarkedUnhealthy != 0 {
		t.Fatalf("sweep = %+v, %v; want one purged", r, err)
	}
	counts, err := s.CountByHealth(ctxT(t))
	if err != nil || counts["unhealthy"] != 2 {
		t.Fatalf("counts = %v, %v; want 2 unhealthy left", counts, err)
	}
}

// insertRows adds n controllers named prefix-i with the given health and a
// last heartbeat age ago.
func insertRows(t testing.TB, pg *testsupport.Postgres, prefix string, n int, health, age string) {
	t.Helper()
	pg.Exec(t, `INSERT INTO meeting_controllers (controller_id, region, grpc_endpoint, webtransport_endpoint,
    max_meetings, max_participants, health_status, last_heartbeat_at)
SELECT $1 || '-' || i, 'r', 'http://10.0.0.1:1', 'https://10.0.0.1:2', 10, 10, $2, now() - $3::interval
FROM generate_series(1, $4::int) AS i`, prefix, health, age, n)
}

// TestConcurrentSweepers runs two replicas' sweeps (two pools) at once, many
// times: no errors, every stale row is marked exactly once, and draining rows
// are removed exactly once.
func TestConcurrentSweepers(t *testing.T) {
	pg := migratedPostgres(t)
	insertRows(t, pg, "stale", 60, "healthy", "1 minute")
	insertRows(t, pg, "pend", 20, "pending", "1 minute")
	insertRows(t, pg, "drain", 15, "draining", "1 minute")
	insertRows(t, pg, "fresh", 10, "healthy", "0 seconds")
	var stores [2]*Store
	for i := range stores {
		pool, err := database.Connect(context.Background(), pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		stores[i] = NewStore(pool)
	}
	var (
		mu              sync.Mutex
		marked, removed int64
		ran             [2]int
		wg              sync.WaitGroup
	)
	start := make(chan struct{})
	for i, s := range stores {
		wg.Go(func() {
			<-start
			for range 40 {
				r, err := s.Sweep(context.Background(), 30*time.Second, time.Hour)
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
					return
				}
				mu.Lock()
				marked += r.MarkedUnhealthy
				removed += r.DrainingRemoved
				if r.Ran {
					ran[i]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if marked != 80 || removed != 15 {
		t.Fatalf("marked %d removed %d, want 80 and 15 exactly once", marked, removed)
	}
	if ran[0]+ran[1] == 0 {
		t.Fatal("no sweep ran at all")
	}
	// Which replica wins the lock while both race is up to the scheduler;
	// alone, each must get it, so neither holds it after a sweep.
	for i, s := range stores {
		if r, err := s.Sweep(ctxT(t), 30*time.Second, time.Hour); err != nil || !r.Ran {
			t.Fatalf("replica %d sweeping alone: ran=%v, %v", i, r.Ran, err)
		}
	}
	counts, err := stores[0].CountByHealth(ctxT(t))
	if err != nil || counts["unhealthy"] != 80 || counts["healthy"] != 10 || counts["draining"] != 0 || counts["pending"] != 0 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
