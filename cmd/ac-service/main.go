// Command ac-service is the auth controller: it issues client-credentials
// tokens to the other services and publishes the JWKS they validate with.
// Logic lives in internal/ac.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/ac"
	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/logging"
)

func main() {
	cfg, err := ac.ReadConfig(config.FromEnv())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New("ac-service")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := ac.Run(ctx, cfg, log); err != nil {
		log.Error("ac-service stopped", "error", err)
		os.Exit(1)
	}
	log.Info("shut down")
}
