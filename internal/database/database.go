// Package database connects to PostgreSQL and applies the embedded schema.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/darktower/devstack/internal/database/migrations"
)

// VersionTable is where golang-migrate records the applied version and the
// dirty flag. The verifier reads it directly.
const VersionTable = "schema_migrations"

// RequiredTables are the tables the services need.
var RequiredTables = []string{"service_clients", "meeting_controllers", "meeting_assignments"}

var errUnreachable = errors.New("unreachable")

// Connect opens a pool and pings it once.
func Connect(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("DATABASE_URL: cannot parse (value not shown)")
	}
	cfg.MaxConnIdleTime = time.Minute
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", Target(databaseURL), err)
	}
	return pool, nil
}

// Target describes a database URL without its password, for errors and logs.
func Target(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparseable DATABASE_URL)"
	}
	return u.Host + strings.TrimSuffix(u.Path, "/")
}

// EmbeddedVersion is the newest migration version compiled into the binary.
func EmbeddedVersion() (uint, error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return 0, err
	}
	var newest uint
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("migration %s: bad version prefix", e.Name())
		}
		newest = max(newest, uint(n))
	}
	return newest, nil
}

// Migrate applies every embedded migration up to target (0: all). It holds
// the migration library's advisory lock, so concurrent runs wait for each
// other and a second run finds nothing to do.
func Migrate(ctx context.Context, databaseURL string, target uint) (from, to uint, err error) {
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return 0, 0, errors.New("DATABASE_URL: cannot parse (value not shown)")
	}
	db := stdlib.OpenDB(*pcfg.ConnConfig)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return 0, 0, fmt.Errorf("postgres %s: %w: %w", Target(databaseURL), errUnreachable, err)
	}
	m, err := newMigrator(db)
	if err != nil {
		return 0, 0, err
	}
	// Read without the migration lock: a run in progress elsewhere may show
	// its step as dirty here. Up and Migrate check again under the lock,
	// and only their answer counts.
	from, _, err = m.Version()
	if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
		return 0, 0, fmt.Errorf("reading schema version: %w", err)
	}
	if target == 0 {
		err = m.Up()
	} else {
		err = m.Migrate(target)
	}
	var dirty migrate.ErrDirty
	if errors.As(err, &dirty) {
		v := uint(dirty.Version)
		return v, v, fmt.Errorf("schema version %d is dirty: a migration failed half-way; fix it by hand, then run db-migrate force %d", v, v)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return from, from, fmt.Errorf("applying migrations: %w", err)
	}
	to, _, _ = m.Version()
	return from, to, nil
}

func newMigrator(db *sql.DB) (*migrate.Migrate, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("embedded migrations: %w", err)
	}
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: VersionTable})
	if err != nil {
		return nil, fmt.Errorf("migration driver: %w", err)
	}
	return migrate.NewWithInstance("iofs", src, "pgx5", drv)
}

// MigrateWithRetry applies every migration, retrying while the server is not
// reachable yet (a Job often starts before Postgres is ready) until ctx ends.
func MigrateWithRetry(ctx context.Context, databaseURL string, log *slog.Logger) (from, to uint, err error) {
	delay := 500 * time.Millisecond
	for {
		from, to, err = Migrate(ctx, databaseURL, 0)
		if err == nil || !errors.Is(err, errUnreachable) {
			return from, to, err
		}
		log.Warn("database not reachable yet, retrying", "target", Target(databaseURL), "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
