// Command db-migrate applies the embedded schema to DATABASE_URL and exits.
// It runs as a Kubernetes Job (and once in local mode) before AC and GC serve.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/logging"
)

func main() {
	log := logging.New("db-migrate")
	cfg := config.FromEnv()
	dbURL := cfg.Secret("DATABASE_URL")
	timeout := cfg.Duration("MIGRATE_TIMEOUT", 2*time.Minute)
	if err := cfg.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if cfg.URL("DATABASE_URL", "postgres", "postgresql"); cfg.Err() != nil {
		fmt.Fprintln(os.Stderr, cfg.Err())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	want, err := database.EmbeddedVersion()
	if err != nil {
		log.Error("reading embedded migrations", "error", err)
		os.Exit(1)
	}
	from, to, err := database.MigrateWithRetry(ctx, dbURL.Reveal(), log)
	if err != nil {
		log.Error("migration failed", "target", database.Target(dbURL.Reveal()), "error", err)
		os.Exit(1)
	}
	log.Info("schema up to date", "target", database.Target(dbURL.Reveal()), "from_version", from, "version", to, "embedded_version", want)
}
