package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

var errUsage = errors.New("unknown command: want up, down, status, verify, logs or clean")

// IsUsage reports whether err is a usage error (exit code 2).
func IsUsage(err error) bool { return errors.Is(err, errUsage) }

// Command runs one devstack subcommand.
func Command(ctx context.Context, cmd, stateDir string, base int, binDir string, follow bool, out io.Writer) error {
	if cmd != "up" && cmd != "down" && cmd != "status" && cmd != "logs" && cmd != "clean" && cmd != "verify" {
		return fmt.Errorf("%w (got %q)", errUsage, cmd)
	}
	s, err := Open(stateDir, base, binDir, out)
	if err != nil {
		return err
	}
	switch cmd {
	case "up":
		began := time.Now()
		fmt.Fprintf(out, "starting the Dark Tower stack in %s (ports %d-%d)\n", s.StateDir, base, base+PortSpan-1)
		if err := s.Up(ctx); err != nil {
			return err
		}
		fmt.Fprintf(out, "stack up in %.1fs; verifying\n\n", time.Since(began).Seconds())
		verr := s.Verify(ctx, out)
		fmt.Fprintln(out)
		s.PrintURLs()
		if verr != nil {
			return verr
		}
		fmt.Fprintf(out, "\nverified healthy %.1fs after start\n", time.Since(began).Seconds())
		return nil
	case "verify":
		return s.Verify(ctx, out)
	case "down":
		if err := s.Down(); err != nil {
			return err
		}
		fmt.Fprintln(out, "stack stopped; data kept in", s.StateDir, "(make clean removes it)")
		return nil
	case "clean":
		if err := s.Clean(); err != nil {
			return err
		}
		fmt.Fprintln(out, "stack stopped and", s.StateDir, "removed")
		return nil
	case "logs":
		colour := false
		if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			colour = true
		}
		return s.FollowLogs(ctx, out, 20, follow, colour)
	default:
		for _, c := range s.components() {
			state := "stopped"
			if c.name == "db-migrate" {
				state = "runs once per up"
			} else if c.running() {
				state = "running"
			}
			fmt.Fprintf(out, "%-18s %s\n", c.name, state)
		}
		return nil
	}
}

// PrintURLs shows where a developer finds things.
func (s *Stack) PrintURLs() {
	t := s.Topo
	fmt.Fprintf(s.Out, "  GC API         %s/api/v1/meeting-controllers  (and %s)\n", t.GCHTTPURL(0), t.GCHTTPURL(1))
	fmt.Fprintf(s.Out, "  join a meeting curl -X POST %s/api/v1/meetings/demo/join\n", t.GCHTTPURL(0))
	fmt.Fprintf(s.Out, "  AC JWKS        %s/.well-known/jwks.json\n", t.ACURL(0))
	fmt.Fprintf(s.Out, "  Prometheus     %s/targets\n", s.PrometheusURL())
	fmt.Fprintf(s.Out, "  verifier       %s/  (status page; make verify runs it again)\n", s.VerifierURL())
	fmt.Fprintf(s.Out, "  logs           make logs   (files in %s)\n", s.Path("logs"))
	fmt.Fprintf(s.Out, "  stop           make down\n")
}
