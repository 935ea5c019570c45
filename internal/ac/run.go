package ac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/metrics"
)

// Run serves AC until ctx ends (config.Main calls it). It serves at once, so
// /health answers and /ready says 503 while the database is still unreachable
// and the clients file not yet synced.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	signer, err := auth.NewSigner([]byte(cfg.SigningSeed.Reveal()))
	if err != nil {
		return err
	}
	target := database.Target(cfg.DatabaseURL.Reveal())
	pool, err := database.Connect(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	defer pool.Close()

	svc, err := New(Options{Pool: pool, Signer: signer, TokenTTL: cfg.TokenTTL, Log: log, Registry: metrics.NewRegistry()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.BindAddress)
	if err != nil {
		return fmt.Errorf("listen on %s (BIND_ADDRESS): %w", cfg.BindAddress, err)
	}
	log.Info("serving", "address", ln.Addr().String(), "database", target, "kid", signer.KeyID(),
		"clients_file", cfg.ClientsFile, "token_ttl", cfg.TokenTTL.String())

	go func() {
		if err := svc.SyncWithRetry(ctx, cfg.Clients, target); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("service client sync gave up", "target", target, "error", err)
		}
	}()
	if err := httpserver.Serve(ctx, ln, svc.Handler(), cfg.ShutdownGrace, log); err != nil {
		return err
	}
	log.Info("shut down")
	return nil
}
