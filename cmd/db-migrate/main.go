// Command db-migrate applies the embedded schema to DATABASE_URL and exits.
// It runs as a Kubernetes Job (and once in local mode) before AC and GC serve.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/secret"
)

func main() { config.Main("db-migrate", loadConfig, migrate) }

type migrateConfig struct {
	DatabaseURL secret.Value
	Timeout     time.Duration // MIGRATE_TIMEOUT: the whole run, retries included
}

func loadConfig(r *config.Reader) (migrateConfig, error) {
	c := migrateConfig{
		DatabaseURL: r.DatabaseURL(),
		Timeout:     r.Duration("MIGRATE_TIMEOUT", 2*time.Minute),
	}
	return c, r.Err()
}

// migrate brings the schema up to the embedded version, retrying while
// Postgres is not yet reachable, until ctx ends or the timeout passes.
func migrate(ctx context.Context, cfg migrateConfig, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	want, err := database.EmbeddedVersion()
	if err != nil {
		return fmt.Errorf("reading embedded migrations: %w", err)
	}
	target := database.Target(cfg.DatabaseURL.Reveal())
	from, to, err := database.MigrateWithRetry(ctx, cfg.DatabaseURL.Reveal(), log)
	if err != nil {
		return fmt.Errorf("migration of %s failed: %w", target, err)
	}
	log.Info("schema up to date", "target", target, "from_version", from, "version", to, "embedded_version", want)
	return nil
}
