package database_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	pg := testsupport.StartPostgres(t)
	ctx := context.Background()
	want, err := database.EmbeddedVersion()
	if err != nil || want < 3 {
		t.Fatalf("EmbeddedVersion = %d, %v", want, err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	tos := make([]uint, 2)
	for i := range 2 {
		wg.Go(func() { _, tos[i], errs[i] = database.Migrate(ctx, pg.URL(), 0) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || tos[i] != want {
			t.Fatalf("concurrent run %d: version %d, err %v", i, tos[i], errs[i])
		}
	}
	from, to, err := database.Migrate(ctx, pg.URL(), 0)
	if err != nil || from != want || to != want {
		t.Fatalf("second run: %d -> %d, %v", from, to, err)
	}

	conn := pg.Conn(t)
	var version int
	var dirty bool
	if err := conn.QueryRow(ctx, "SELECT version, dirty FROM "+database.VersionTable).Scan(&version, &dirty); err != nil {
		t.Fatal(err)
	}
	if uint(version) != want || dirty {
		t.Fatalf("version table says %d dirty=%v", version, dirty)
	}
	for _, tbl := range database.RequiredTables {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tbl).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (%v)", tbl, err)
		}
	}
	// The CHECK on health_status rejects values outside the five states.
	_, err = conn.Exec(ctx, `INSERT INTO meeting_controllers (controller_id, region, grpc_endpoint, webtransport_endpoint, max_meetings, max_participants, health_status)
		VALUES ('mc-1', 'local', 'http://x:1', 'https://x:2', 1, 1, 'bogus')`)
	if err == nil {
		t.Fatal("health_status CHECK accepted 'bogus'")
	}
}

func TestMigrateDirtyRefuses(t *testing.T) {
	pg := testsupport.StartPostgres(t)
	ctx := context.Background()
	if _, _, err := database.Migrate(ctx, pg.URL(), 2); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "UPDATE "+database.VersionTable+" SET dirty = true")
	if _, _, err := database.Migrate(ctx, pg.URL(), 0); err == nil {
		t.Fatal("Migrate on a dirty schema succeeded")
	}
}

func TestMigrateUnreachableNamesTargetNotPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	url := "postgres://u:supersecretpw@127.0.0.1:1/db?sslmode=disable"
	_, _, err := database.MigrateWithRetry(ctx, url, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("expected an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1/db") || strings.Contains(msg, "supersecretpw") {
		t.Fatalf("error %q should name the target and hide the password", msg)
	}
}
