// Command ac-service is the auth controller: it issues client-credentials
// tokens to the other services and publishes the JWKS they validate with.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/ac"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/metrics"
)

// shutdownGrace is how long requests in flight may finish after SIGTERM;
// Kubernetes waits 30 s before SIGKILL.
const shutdownGrace = 10 * time.Second

func main() {
	cfg, err := ac.ReadConfig(config.FromEnv())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New("ac-service")
	if err := run(cfg, log); err != nil {
		log.Error("ac-service stopped", "error", err)
		os.Exit(1)
	}
}

func run(cfg ac.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

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

	svc, err := ac.New(ac.Options{Pool: pool, Signer: signer, TokenTTL: cfg.TokenTTL, Log: log, Registry: metrics.NewRegistry()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.BindAddress)
	if err != nil {
		return fmt.Errorf("listen on %s (BIND_ADDRESS): %w", cfg.BindAddress, err)
	}
	log.Info("serving", "address", ln.Addr().String(), "database", target, "kid", signer.KeyID(),
		"clients_file", cfg.ClientsFile, "token_ttl", cfg.TokenTTL.String())

	// Serve at once so /health answers and /ready says 503 while the
	// database is still unreachable.
	go func() {
		if err := svc.SyncWithRetry(ctx, cfg.Clients, target); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("service client sync gave up", "target", target, "error", err)
		}
	}()
	if err := httpserver.Serve(ctx, ln, svc.Handler(), shutdownGrace, log); err != nil {
		return err
	}
	log.Info("shut down")
	return nil
}
