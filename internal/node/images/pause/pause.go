// Package pause is the node's pause container: the process that holds a pod's
// namespaces. It sleeps until SIGINT or SIGTERM (then exits 0) and, as PID 1 of the
// pod's PID namespace when the namespace is shared, reaps every child that exits, so
// no zombie outlives its parent. It is what registry.k8s.io/pause does, in Go.
package pause

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run blocks until SIGINT or SIGTERM arrives (or ctx ends), reaping exited children
// on every SIGCHLD. It returns the signal that ended it, or nil when ctx did.
func Run(ctx context.Context, log io.Writer) os.Signal {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	Reap() // children that exited before the handler was in place
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-sigs:
			if s == syscall.SIGCHLD {
				Reap()
				continue
			}
			fmt.Fprintf(log, "Shutting down, got signal: %v\n", s)
			return s
		}
	}
}

// Reap waits for every child that has exited, without blocking, and returns how many
// it reaped.
func Reap() int {
	n := 0
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return n
		}
		n++
	}
}
