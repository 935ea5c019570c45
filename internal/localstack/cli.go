package localstack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/internal/auth"
)

// IO is where Main reads its settings and writes (cmd/devstack passes the
// process's own; tests their buffers).
type IO struct {
	Stdout, Stderr io.Writer
	Lookup         func(string) (string, bool)
	TTY            bool // stdout is a terminal: logs are coloured
}

// subcommand is one devstack command: mutating ones hold the state
// directory's lock; the others only read, and write nothing.
type subcommand struct {
	name, help string
	mutating   bool
	run        func(ctx context.Context, s *Stack, o opts) error
}

// opts are the flags a subcommand may use.
type opts struct {
	follow, colour bool
	out            io.Writer
}

// commands is the one list of subcommands: usage and dispatch derive from it.
var commands = []subcommand{
	{"up", "start the stack (or what of it is stopped) and verify it", true, up},
	{"down", "stop every process; data stays", true, func(_ context.Context, s *Stack, o opts) error {
		if err := s.Down(); err != nil {
			return err
		}
		fmt.Fprintln(o.out, "stack stopped; data kept in", s.StateDir, "(make clean removes it)")
		return nil
	}},
	{"status", "list the processes and why a stopped one stopped", false, func(_ context.Context, s *Stack, o opts) error {
		return s.Status(o.out)
	}},
	{"verify", "run the verifier against the running stack", false, verify},
	{"logs", "follow the merged logs of every process", false, func(ctx context.Context, s *Stack, o opts) error {
		return s.FollowLogs(ctx, o.out, 20, o.follow, o.colour)
	}},
	{"clean", "stop the stack and delete its state", true, func(_ context.Context, s *Stack, o opts) error {
		if err := s.Clean(); err != nil {
			return err
		}
		fmt.Fprintln(o.out, "stack stopped and", s.StateDir, "removed")
		return nil
	}},
}

// ExitError carries the exit code a command's failure means (SPEC section 8
// for verify: 1 a check failed, 2 bad configuration or usage).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// exitCode is the exit code for a command's error: an ExitError's own, else 1.
func exitCode(err error) int {
	var e *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	}
	return 1
}

// Main runs devstack's command line and returns the exit code: 0 done, 1 a
// failure (for verify: a check failed), 2 usage or configuration, 130
// interrupted. The subcommand may come before or after the flags.
func Main(ctx context.Context, args []string, stdio IO) int {
	if stdio.Lookup == nil {
		stdio.Lookup = os.LookupEnv
	}
	// go-redis logs every failed dial while devstack waits for Redis; what
	// failed is in devstack's own message, the rest is noise.
	redis.SetLogger(quiet{})
	env := func(k, def string) string {
		if v, ok := stdio.Lookup(k); ok && v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	stateDir := fs.String("state-dir", env("STATE_DIR", ".state"), "state directory (STATE_DIR)")
	binDir := fs.String("bin-dir", env("BIN_DIR", "bin"), "where the service binaries are built (BIN_DIR)")
	portBase := fs.String("port-base", env("PORT_BASE", strconv.Itoa(DefaultPortBase)), "first port of the set (PORT_BASE)")
	follow := fs.Bool("follow", true, "logs: keep following")
	fs.Usage = func() {
		fmt.Fprintln(stdio.Stderr, "usage: devstack [flags] <command>\n\ncommands:")
		for _, c := range commands {
			fmt.Fprintf(stdio.Stderr, "  %-7s %s\n", c.name, c.help)
		}
		fmt.Fprintln(stdio.Stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	i := slices.IndexFunc(commands, func(c subcommand) bool { return c.name == name })
	if i < 0 || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != name) {
		if name != "" && i < 0 {
			fmt.Fprintf(stdio.Stderr, "devstack: unknown command %q\n", name)
		}
		fs.Usage()
		return 2
	}
	base, err := strconv.Atoi(*portBase)
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "PORT_BASE: expected a port number, got %q\n", *portBase)
		return 2
	}
	if err := run(ctx, commands[i], *stateDir, base, *binDir, opts{follow: *follow, colour: stdio.TTY, out: stdio.Stdout}); err != nil {
		if ctx.Err() != nil {
			// Processes already started run on (their own sessions).
			fmt.Fprintf(stdio.Stderr, "devstack: %s interrupted; what it started keeps running (make status shows it, make down stops it)\n", name)
			return 130
		}
		fmt.Fprintln(stdio.Stderr, "devstack:", err)
		return exitCode(err)
	}
	return 0
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// run opens the stack and runs c, under the state directory's lock when c
// changes the stack.
func run(ctx context.Context, c subcommand, stateDir string, base int, binDir string, o opts) error {
	s, err := Open(stateDir, base, binDir, o.out)
	if err != nil {
		return err
	}
	if c.mutating {
		if c.name != "up" {
			if _, err := os.Stat(s.StateDir); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(o.out, "nothing to stop: no stack in", s.StateDir)
				return nil
			}
		}
		if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
			return fmt.Errorf("STATE_DIR %s: %w", s.StateDir, err)
		}
		release, err := s.Lock(c.name)
		if err != nil {
			return err
		}
		defer release()
	}
	return c.run(ctx, s, o)
}

func up(ctx context.Context, s *Stack, o opts) error {
	began := time.Now()
	fmt.Fprintf(o.out, "starting the Dark Tower stack in %s (ports %d-%d)\n", s.StateDir, s.Base, s.Base+PortSpan-1)
	if err := s.CreateSecrets(); err != nil {
		return err
	}
	if err := s.Up(ctx); err != nil {
		return err
	}
	fmt.Fprintf(o.out, "stack up in %.1fs; verifying\n\n", time.Since(began).Seconds())
	verr := s.Verify(ctx, o.out)
	fmt.Fprintln(o.out)
	s.PrintURLs()
	if verr != nil {
		return verr
	}
	fmt.Fprintf(o.out, "\nverified healthy %.1fs after start\n", time.Since(began).Seconds())
	return nil
}

// verify says at once when nothing runs: the verifier would retry every
// refused connection until its deadline.
func verify(ctx context.Context, s *Stack, o opts) error {
	if err := s.Exists(); err != nil {
		return &ExitError{2, fmt.Errorf("nothing is running: make up (%w)", err)}
	}
	if !slices.ContainsFunc(s.components(), func(c component) bool { return c.name != "db-migrate" && c.running() }) {
		return &ExitError{1, fmt.Errorf("nothing is running: make up (every process of the stack in %s is stopped)", s.StateDir)}
	}
	return s.Verify(ctx, o.out)
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
