// Command global-controller runs GC: the meeting-controller registry (gRPC),
// its HTTP API, and the staleness sweeper. Logic lives in internal/gc.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/gc"
	"github.com/darktower/devstack/internal/logging"
)

func main() {
	r := config.FromEnv()
	cfg := gc.LoadConfig(r)
	if err := r.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := logging.New("global-controller")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := gc.Run(ctx, cfg, log); err != nil {
		log.Error("global controller stopped", "error", err)
		os.Exit(1)
	}
	log.Info("global controller stopped")
}
