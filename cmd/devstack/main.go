// Command devstack runs the Dark Tower stack as local processes (local mode):
// `devstack up` starts and verifies it, `down` stops it, `logs` follows the
// merged logs, `status` lists the processes, `clean` removes the state.
// The Makefile's up/down/verify/logs/clean targets call it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/verifier/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := localstack.Main(ctx, os.Args[1:], localstack.IO{
		Stdout: os.Stdout, Stderr: os.Stderr, TTY: report.IsTerminal(os.Stdout),
	})
	stop()
	os.Exit(code)
}
