// Package cli is the verifier's command line: run (default), lint, plan,
// serve and schema. Exit codes: 0 healthy, 1 a check failed, 2 bad
// configuration or usage, 3 deadline reached while checks still failed.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/metrics"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
	"github.com/darktower/devstack/verifier/report"
	"github.com/darktower/devstack/verifier/runner"
	"github.com/darktower/devstack/verifier/serve"
)

const usage = `usage: verifier [command] [flags]

commands:
  run     run every configured check once and print the verdict (default)
  lint    validate a configuration file (schema, keys, references)
  plan    list the checks that would run, in dependency order
  serve   run the checks continually; serve /healthz, /metrics and a status page
  schema  print the configuration's JSON Schema

flags (run, lint, plan, serve):
  --config PATH        configuration file (default $VERIFIER_CONFIG or verifier.yaml)
run and serve:
  --output FORMAT      text, json or junit (run only; default text)
  --concurrency N      checks probing at once; 0 for all (default: from the file)
  --deadline D         time budget of a run, e.g. 90s (default: from the file)
  --log-level LEVEL    debug, info, warn or error on stderr (default error)
  --down FILE          run only: JSON {check id: reason} for targets known not to run
                       (local mode's supervisor writes it); their failure is final at once
serve:
  --listen ADDR        default 127.0.0.1:9095
  --interval D         pause between runs (default 15s)

exit codes: 0 healthy, 1 a check failed, 2 bad configuration or usage,
3 deadline reached while checks still failed.
`

// IO is where the command writes.
type IO struct {
	Stdout, Stderr io.Writer
	Lookup         func(string) (string, bool)
	TTY            bool // stdout is a terminal: colour and a progress line
}

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdio IO) int {
	if stdio.Lookup == nil {
		stdio.Lookup = os.LookupEnv
	}
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run", "lint", "plan", "serve":
		return command(ctx, cmd, args, stdio)
	case "schema":
		_, _ = stdio.Stdout.Write(config.SchemaJSON)
		return 0
	case "help":
		fmt.Fprint(stdio.Stdout, usage)
		return 0
	}
	fmt.Fprintf(stdio.Stderr, "verifier: unknown command %q\n\n%s", cmd, usage)
	return runner.ExitUsage
}

type flags struct {
	config, output, logLevel, listen, down string
	concurrency                            int
	deadline, interval                     time.Duration
	secrets                                bool
}

func command(ctx context.Context, cmd string, args []string, stdio IO) int {
	fs := flag.NewFlagSet("verifier "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	def := "verifier.yaml"
	if v, ok := stdio.Lookup("VERIFIER_CONFIG"); ok && v != "" {
		def = v
	}
	var f flags
	fs.StringVar(&f.config, "config", def, "")
	fs.StringVar(&f.output, "output", "text", "")
	fs.StringVar(&f.logLevel, "log-level", "error", "")
	fs.IntVar(&f.concurrency, "concurrency", -1, "")
	fs.DurationVar(&f.deadline, "deadline", 0, "")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9095", "")
	fs.DurationVar(&f.interval, "interval", 15*time.Second, "")
	fs.BoolVar(&f.secrets, "secrets", false, "")
	fs.StringVar(&f.down, "down", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdio.Stdout, usage)
			return 0
		}
		fmt.Fprintf(stdio.Stderr, "verifier %s: %v\n\n%s", cmd, err, usage)
		return runner.ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Stderr, "verifier %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return runner.ExitUsage
	}
	switch f.output {
	case "text", "json", "junit":
	default:
		fmt.Fprintf(stdio.Stderr, "verifier %s: --output: expected text, json or junit, got %q\n", cmd, f.output)
		return runner.ExitUsage
	}
	if f.concurrency < -1 || f.deadline < 0 || f.interval <= 0 {
		fmt.Fprintf(stdio.Stderr, "verifier %s: --concurrency must be >= 0, --deadline and --interval positive\n", cmd)
		return runner.ExitUsage
	}
	resolve := cmd == "run" || cmd == "serve" || f.secrets
	cfg, err := config.Load(f.config, config.Options{Lookup: stdio.Lookup, ResolveSecrets: resolve, CheckIDs: probe.IDs()})
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "verifier %s: invalid configuration:\n%v\n", cmd, err)
		return runner.ExitUsage
	}
	checks := probe.Checks(cfg)
	levels, err := runner.Levels(checks)
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "verifier %s: %v\n", cmd, err)
		return runner.ExitUsage
	}
	if len(checks) == 0 {
		fmt.Fprintf(stdio.Stderr, "verifier %s: %s configures no checks; add a redis, postgres, ac, gc, mc, prometheus or kubernetes section\n", cmd, f.config)
		return runner.ExitUsage
	}
	if f.concurrency >= 0 {
		cfg.Concurrency = f.concurrency
	}
	if f.deadline > 0 {
		cfg.Deadline = config.Duration(f.deadline)
	}
	opt := runner.Options{Concurrency: cfg.Concurrency, Deadline: cfg.Deadline.D(), Backoff: cfg.Backoff,
		Log: logging.NewTo(stdio.Stderr, "verifier", f.logLevel)}
	if f.down != "" {
		if cmd != "run" {
			fmt.Fprintf(stdio.Stderr, "verifier %s: --down applies to run only\n", cmd)
			return runner.ExitUsage
		}
		if opt.Down, err = readDown(f.down, checks); err != nil {
			fmt.Fprintf(stdio.Stderr, "verifier %s: --down: %v\n", cmd, err)
			return runner.ExitUsage
		}
	}
	switch cmd {
	case "lint":
		fmt.Fprintf(stdio.Stdout, "%s: valid, %d checks\n", f.config, len(checks))
		return 0
	case "plan":
		printPlan(stdio.Stdout, cfg, levels)
		return 0
	case "serve":
		return runServe(ctx, cfg, checks, opt, f, stdio)
	}
	return runOnce(ctx, cfg, checks, opt, f, stdio)
}

// readDown reads the --down file: a JSON object from check id to what the
// supervisor knows about the process behind it.
func readDown(path string, checks []probe.Check) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	var down map[string]string
	if err := json.Unmarshal(b, &down); err != nil {
		return nil, fmt.Errorf("%s: expected a JSON object of check id to reason: %v", path, err)
	}
	for id := range down {
		if !slices.ContainsFunc(checks, func(c probe.Check) bool { return c.ID == id }) {
			return nil, fmt.Errorf("%s: %q is not a configured check", path, id)
		}
	}
	return down, nil
}

func runOnce(ctx context.Context, cfg *config.Config, checks []probe.Check, opt runner.Options, f flags, stdio IO) int {
	var text *report.Text
	if f.output == "text" {
		text = report.NewText(stdio.Stdout, stdio.TTY, len(checks))
		opt.Observe = text.Observe
		text.Start()
	}
	rep := runner.Run(ctx, cfg, checks, opt)
	var err error
	switch f.output {
	case "text":
		text.Finish(rep)
	case "json":
		err = report.JSON(stdio.Stdout, rep)
	case "junit":
		err = report.JUnit(stdio.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "verifier: writing the report: %v\n", err)
	}
	return rep.ExitCode()
}

func runServe(ctx context.Context, cfg *config.Config, checks []probe.Check, opt runner.Options, f flags, stdio IO) int {
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		fmt.Fprintf(stdio.Stderr, "verifier serve: --listen %s: %v\n", f.listen, err)
		return runner.ExitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reg := metrics.NewRegistry()
	s := serve.New(ctx, cfg, checks, opt, f.interval, reg)
	go s.Loop(ctx)
	opt.Log.Info("serving", "address", ln.Addr().String(), "checks", len(checks), "interval", f.interval.String())
	fmt.Fprintf(stdio.Stderr, "verifier serve: listening on http://%s (checks every %s)\n", ln.Addr(), f.interval)
	if err := httpserver.Serve(ctx, ln, s.Handler(reg), 5*time.Second, opt.Log); err != nil {
		fmt.Fprintf(stdio.Stderr, "verifier serve: %v\n", err)
		return 1
	}
	return 0
}

func printPlan(w io.Writer, cfg *config.Config, levels [][]probe.Check) {
	conc := "all at once"
	if cfg.Concurrency > 0 {
		conc = fmt.Sprintf("%d at a time", cfg.Concurrency)
	}
	n := 0
	for _, l := range levels {
		n += len(l)
	}
	fmt.Fprintf(w, "%d checks from %s; deadline %s; concurrency %s; retries back off %s..%s\n",
		n, cfg.Path, cfg.Deadline.D(), conc, cfg.Backoff.Initial.D(), cfg.Backoff.Max.D())
	for i, l := range levels {
		fmt.Fprintf(w, "\nwave %d (in parallel):\n", i+1)
		for _, c := range l {
			after := ""
			if len(c.Deps) > 0 {
				after = "  after " + strings.Join(c.Deps, ", ")
			}
			fmt.Fprintf(w, "  %-24s timeout %-5s %s%s\n", c.ID, c.Timeout, strings.Join(c.Targets, ", "), after)
		}
	}
}
