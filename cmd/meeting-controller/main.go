// Command meeting-controller hosts meetings: it registers with the global
// controller, accepts meeting assignments over gRPC and serves WebTransport.
// Configuration comes from the environment (see internal/mc.LoadConfig).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/mc"
)

func main() {
	cfg, err := mc.LoadConfig(config.FromEnv())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New("meeting-controller")
	// quic-go and webtransport-go write through the standard log package;
	// route that into the JSON logger.
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := mc.New(cfg, log)
	if err != nil {
		log.Error("meeting controller cannot start", "error", err)
		os.Exit(1)
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("meeting controller failed", "error", err)
		os.Exit(1)
	}
}
