// Command devstack runs the Dark Tower stack as local processes (local mode):
// `devstack up` starts and verifies it, `down` stops it, `logs` follows the
// merged logs, `status` lists the processes, `clean` removes the state.
// The Makefile's up/down/verify/logs/clean targets call it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/internal/localstack"
)

const usage = `usage: devstack [flags] up|down|status|verify|logs|clean

flags:
`

func main() {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	stateDir := fs.String("state-dir", envOr("STATE_DIR", ".state"), "state directory (STATE_DIR)")
	binDir := fs.String("bin-dir", envOr("BIN_DIR", "bin"), "where the service binaries are built (BIN_DIR)")
	portBase := fs.String("port-base", envOr("PORT_BASE", strconv.Itoa(localstack.DefaultPortBase)), "first port of the set (PORT_BASE)")
	follow := fs.Bool("follow", true, "logs: keep following")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	// The subcommand may come before or after the flags.
	args := os.Args[1:]
	var cmd string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if cmd == "" && fs.NArg() > 0 {
		cmd = fs.Arg(0)
	}
	if cmd == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != cmd) {
		fs.Usage()
		os.Exit(2)
	}
	base, err := strconv.Atoi(*portBase)
	if err != nil {
		fmt.Fprintf(os.Stderr, "PORT_BASE: expected a port number, got %q\n", *portBase)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// go-redis logs every failed dial while devstack waits for Redis; what
	// failed is in devstack's own message, the rest is noise.
	redis.SetLogger(quiet{})
	if err := localstack.Command(ctx, cmd, *stateDir, base, *binDir, *follow, os.Stdout); err != nil {
		if ctx.Err() != nil {
			// Processes already started run on (their own sessions).
			fmt.Fprintf(os.Stderr, "devstack: %s interrupted; what it started keeps running (make status shows it, make down stops it)\n", cmd)
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(localstack.ExitCode(err))
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
