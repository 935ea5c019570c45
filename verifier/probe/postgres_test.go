package probe

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/config"
)

// The verifier's Postgres session is read-only in the server itself: even a
// write the verifier attempted by mistake would fail with SQLSTATE 25006.
func TestPostgresSessionIsReadOnly(t *testing.T) {
	pg := testsupport.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := database.Migrate(ctx, pg.URL(), 0); err != nil {
		t.Fatal(err)
	}
	tg := Target{Cfg: &config.Config{Postgres: &config.Postgres{URL: config.Credential{Env: "X", Value: secret.New(pg.URL())}}}, Run: NewRun(time.Now())}
	if r := postgresSchema(ctx, tg, nil); r.Err != nil {
		t.Fatalf("postgres.schema on a migrated database: %v (%s)", r.Err, r.Observed)
	}
	conn, _, err := pgConnect(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "UPDATE "+database.VersionTable+" SET dirty = true")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write in the verifier's session gave %v, want SQLSTATE 25006 (read-only transaction)", err)
	}
}
