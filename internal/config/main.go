package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/logging"
)

// Exit codes of every binary that uses Main; cmd/*/main_test.go checks them.
const (
	exitRunFailed = 1 // Run returned an error
	exitBadConfig = 2 // a setting is missing or malformed
)

// Main is the whole main function of a service binary. It reads the settings
// with load from the environment (on a problem it prints the one line naming
// the variable to stderr and exits 2), builds the JSON logger tagged name,
// runs until SIGINT or SIGTERM cancels ctx, and exits 1 if run fails.
//
// A clean stop is logged by run itself, which knows what it drained; Main
// logs a failed one. It lives here rather than in a package of its own so
// the binaries' import sets (and so their image contexts) stay as they were.
func Main[C any](name string, load func(*Reader) (C, error), run func(ctx context.Context, cfg C, log *slog.Logger) error) {
	os.Exit(exitCode(FromEnv(), os.Stderr, func() *slog.Logger { return logging.New(name) }, name, load, run))
}

// exitCode is Main up to os.Exit, with its inputs and outputs given.
func exitCode[C any](r *Reader, stderr io.Writer, newLog func() *slog.Logger, name string,
	load func(*Reader) (C, error), run func(context.Context, C, *slog.Logger) error) int {
	cfg, err := load(r)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitBadConfig
	}
	log := newLog()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error(name+" stopped", "error", err)
		return exitRunFailed
	}
	return 0
}
