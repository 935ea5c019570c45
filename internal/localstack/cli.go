package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/auth"
)

var errUsage = errors.New("unknown command: want up, down, status, verify, logs or clean")

// IsUsage reports whether err is a usage error (exit code 2).
func IsUsage(err error) bool { return errors.Is(err, errUsage) }

// ExitError carries the exit code a command's failure means (SPEC section 8
// for verify: 1 a check failed, 2 bad configuration or usage).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the exit code for a command's error: 2 for usage, an
// ExitError's own, else 1.
func ExitCode(err error) int {
	var e *ExitError
	switch {
	case err == nil:
		return 0
	case IsUsage(err):
		return 2
	case errors.As(err, &e):
		return e.Code
	}
	return 1
}

// Command runs one devstack subcommand. up, down and clean change the stack
// and hold the state directory's lock; status, verify and logs only read,
// and write nothing.
func Command(ctx context.Context, cmd, stateDir string, base int, binDir string, follow bool, out io.Writer) error {
	if cmd != "up" && cmd != "down" && cmd != "status" && cmd != "logs" && cmd != "clean" && cmd != "verify" {
		return fmt.Errorf("%w (got %q)", errUsage, cmd)
	}
	s, err := Open(stateDir, base, binDir, out)
	if err != nil {
		return err
	}
	if cmd == "up" || cmd == "down" || cmd == "clean" {
		if cmd != "up" {
			if _, err := os.Stat(s.StateDir); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(out, "nothing to stop: no stack in", s.StateDir)
				return nil
			}
		}
		if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
			return fmt.Errorf("STATE_DIR %s: %w", s.StateDir, err)
		}
		release, err := s.Lock(cmd)
		if err != nil {
			return err
		}
		defer release()
	}
	switch cmd {
	case "up":
		began := time.Now()
		fmt.Fprintf(out, "starting the Dark Tower stack in %s (ports %d-%d)\n", s.StateDir, base, base+PortSpan-1)
		if err := s.CreateSecrets(); err != nil {
			return err
		}
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
		// Nothing to verify is said at once: the verifier would retry every
		// refused connection until its deadline.
		if err := s.Exists(); err != nil {
			return &ExitError{2, fmt.Errorf("nothing is running: make up (%w)", err)}
		}
		if !slices.ContainsFunc(s.components(), func(c component) bool { return c.name != "db-migrate" && c.running() }) {
			return &ExitError{1, fmt.Errorf("nothing is running: make up (every process of the stack in %s is stopped)", s.StateDir)}
		}
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
		return s.Status(out)
	}
}

// Status prints each process's state; an error names the stopped ones.
// The processes are started and checked, not supervised: nothing restarts
// one that exits, so each stopped one is shown with why it stopped.
func (s *Stack) Status(out io.Writer) error {
	if err := s.Exists(); err != nil {
		return fmt.Errorf("nothing is running: make up (%w)", err)
	}
	var stopped []string
	for _, c := range s.components() {
		st := c.state()
		switch {
		case c.name == "db-migrate":
			fmt.Fprintf(out, "%-18s runs once per up\n", c.name)
		case st.Running:
			fmt.Fprintf(out, "%-18s running (pid %d)\n", c.name, st.Pid)
		default:
			why := st.Reason
			if last := s.lastLine(c.name); last != "" && st.Pid > 0 && !st.Stale {
				why += "; its log ends: " + last
			}
			fmt.Fprintf(out, "%-18s stopped: %s\n", c.name, why)
			stopped = append(stopped, c.name)
		}
	}
	if len(stopped) > 0 {
		return fmt.Errorf("%d stopped (%s): make up starts them again, make logs shows why", len(stopped), strings.Join(stopped, ", "))
	}
	return nil
}

// lastLine is the last line of the log a process wrote last.
func (s *Stack) lastLine(name string) string {
	t := strings.TrimRight(s.tail(name), "\n")
	if i := strings.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return strings.TrimSpace(t)
}

// PrintURLs shows where a developer finds things.
func (s *Stack) PrintURLs() {
	t := s.Topo
	fmt.Fprintf(s.Out, "  GC API         %s/api/v1/meeting-controllers  (and %s)\n", t.GCHTTPURL(0), t.GCHTTPURL(1))
	fmt.Fprintf(s.Out, "  join a meeting %s\n", t.JoinCommand("demo", strings.Repeat(" ", 17)))
	fmt.Fprintf(s.Out, "  AC JWKS        %s/.well-known/jwks.json\n", t.ACURL(0))
	fmt.Fprintf(s.Out, "  Prometheus     %s/targets\n", s.PrometheusURL())
	fmt.Fprintf(s.Out, "  verifier       %s/  (status page; make verify runs it again)\n", s.VerifierURL())
	fmt.Fprintf(s.Out, "  logs           make logs   (files in %s)\n", s.Path("logs"))
	fmt.Fprintf(s.Out, "  stop           make down\n")
}

// JoinCommand is a shell pipeline that joins meeting code at GC replica 0
// with a web-client token from AC replica 0 (issue 11 item 3: joins need
// scope meeting.join). The token request comes from WebClientForm's 0600
// file and the token reaches the second curl on stdin, so neither the
// secret nor the token is on a command line. Continuation lines start
// with indent.
func (t *Topology) JoinCommand(code, indent string) string {
	form := WebClientForm(t.ClientsFile)
	if abs, err := filepath.Abs(form); err == nil {
		form = abs
	}
	return strings.Join([]string{
		"curl -s -d " + shellQuote("@"+form) + " " + t.ACURL(0) + auth.TokenPath,
		`| sed -nE 's/.*"access_token":"([^"]+)".*/Authorization: Bearer \1/p'`,
		"| curl -s -X POST -H @- " + t.GCHTTPURL(0) + "/api/v1/meetings/" + code + "/join",
	}, " \\\n"+indent)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
