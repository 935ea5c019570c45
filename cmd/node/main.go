// Command node brings the single-node Kubernetes of internal/node up or down:
//
//	node up | down | status
//
// Settings come from the environment: NODE_DIR (state directory), BIN_DIR
// (the pinned commands), TOOLS_CACHE (version-keyed cache). `make node-up`,
// `make node-down` and `make node-status` set them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/darktower/devstack/internal/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: node up|down|status")
		return 2
	}
	for _, k := range []string{"NODE_DIR", "BIN_DIR", "TOOLS_CACHE"} {
		if os.Getenv(k) == "" {
			fmt.Fprintf(os.Stderr, "node: %s is not set (make node-up sets it)\n", k)
			return 2
		}
	}
	n, err := node.New(os.Getenv("NODE_DIR"), os.Getenv("BIN_DIR"), os.Getenv("TOOLS_CACHE"), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch args[0] {
	case "up":
		err = n.Up(ctx)
	case "down":
		err = n.Down(context.WithoutCancel(ctx))
	case "status":
		err = n.Status(ctx)
	default:
		fmt.Fprintf(os.Stderr, "node: unknown command %q; usage: node up|down|status\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
