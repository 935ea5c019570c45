package report

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/darktower/devstack/verifier/runner"
)

const (
	green  = "\033[32m"
	red    = "\033[31m"
	yellow = "\033[33m"
	dim    = "\033[2m"
	bold   = "\033[1m"
	reset  = "\033[0m"
	clear  = "\r\033[K"
)

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Text writes a human report. On a terminal it colours verdicts and keeps a
// live progress line; otherwise it writes plain lines, one per verdict.
type Text struct {
	w     io.Writer
	tty   bool
	total int

	mu      sync.Mutex
	states  map[string]runner.CheckResult
	started time.Time
	stop    chan struct{}
	stopped chan struct{}
}

// NewText prepares a writer for total checks; tty turns on colour and the
// progress line.
func NewText(w io.Writer, tty bool, total int) *Text {
	return &Text{w: w, tty: tty, total: total, states: map[string]runner.CheckResult{}, started: time.Now()}
}

// Start begins the progress line (terminal only).
func (t *Text) Start() {
	if !t.tty {
		return
	}
	t.stop, t.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
				t.mu.Lock()
				t.progress()
				t.mu.Unlock()
			}
		}
	}()
}

// Observe records a change and prints a line when a check reaches a verdict.
func (t *Text) Observe(c runner.CheckResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, seen := t.states[c.ID]
	t.states[c.ID] = c
	if c.Done() && (!seen || !prev.Done()) {
		if t.tty {
			fmt.Fprint(t.w, clear)
		}
		fmt.Fprintln(t.w, t.line(c))
		t.progress()
	}
}

func (t *Text) progress() {
	if !t.tty {
		return
	}
	done, running := 0, []string{}
	for _, c := range t.states {
		if c.Done() {
			done++
		} else if c.Status == runner.Running {
			running = append(running, fmt.Sprintf("%s#%d", c.ID, c.Attempts))
		}
	}
	slices.Sort(running)
	fmt.Fprintf(t.w, "%s%s[%d/%d] %.1fs running: %s%s", clear, dim, done, t.total, time.Since(t.started).Seconds(), strings.Join(running, " "), reset)
}

func (t *Text) paint(col, s string) string {
	if !t.tty {
		return s
	}
	return col + s + reset
}

func (t *Text) line(c runner.CheckResult) string {
	dur := c.Duration.Round(time.Millisecond).String()
	switch c.Status {
	case runner.Pass:
		return fmt.Sprintf("%s %-24s %8s  %s", t.paint(green, "PASS   "), c.ID, dur, c.Evidence)
	case runner.Fail:
		return fmt.Sprintf("%s %-24s %8s  %s (%d attempt%s)", t.paint(red, "FAIL   "), c.ID, dur, c.Class.ID, c.Attempts, plural(c.Attempts))
	default:
		return fmt.Sprintf("%s %-24s %8s  blocked by %s", t.paint(yellow, "BLOCKED"), c.ID, "", c.BlockedBy)
	}
}

// Finish stops the progress line and writes the failures in full and the summary.
func (t *Text) Finish(r *runner.Report) {
	if t.stop != nil {
		close(t.stop)
		<-t.stopped
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tty {
		fmt.Fprint(t.w, clear)
	}
	// Checks that never reported (a report written without Observe).
	for _, c := range r.Checks {
		if _, ok := t.states[c.ID]; !ok || !t.states[c.ID].Done() {
			fmt.Fprintln(t.w, t.line(c))
		}
	}
	for _, c := range r.Checks {
		if c.Status != runner.Fail {
			continue
		}
		fmt.Fprintf(t.w, "\n%s\n", t.paint(bold+red, "✗ "+c.ID))
		for _, l := range strings.Split(strings.TrimRight(failureText(c), "\n"), "\n") {
			fmt.Fprintln(t.w, "  "+l)
		}
		var blocked []string
		for _, b := range r.Checks {
			if b.Status == runner.Blocked && b.BlockedBy == c.ID {
				blocked = append(blocked, b.ID)
			}
		}
		if len(blocked) > 0 {
			fmt.Fprintf(t.w, "  blocked:  %s\n", strings.Join(blocked, ", "))
		}
	}
	verdict := map[int]string{
		runner.ExitHealthy:  t.paint(green, "healthy"),
		runner.ExitFailed:   t.paint(red, "failed"),
		runner.ExitDeadline: t.paint(red, "deadline reached with checks still failing"),
	}[r.ExitCode()]
	fmt.Fprintf(t.w, "\n%d passed, %d failed, %d blocked in %s: %s (exit %d)\n",
		r.Count(runner.Pass), r.Count(runner.Fail), r.Count(runner.Blocked), r.Duration().Round(time.Millisecond), verdict, r.ExitCode())
}
