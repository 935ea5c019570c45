package localstack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/pgcluster"
	"github.com/darktower/devstack/internal/procs"
)

// postgresDataDir is pgcluster's data directory under postgres/.
func (l Layout) postgresDataDir() string { return l.Path("postgres", "data") }

// postmasterIs reports whether pid is the postmaster of dataDir: the server
// binary, working in dataDir (the postmaster changes into it), started when
// postmaster.pid says (its third line, in Unix seconds).
func postmasterIs(pid int, dataDir string, started int64) (bool, string) {
	exe, cwd, err := procs.Identity(pid)
	if err != nil {
		return false, fmt.Sprintf("pid %d is alive but its identity cannot be read (%v)", pid, err)
	}
	wantExe, _ := filepath.EvalSymlinks(filepath.Join(pgcluster.BinDir(), "postgres"))
	wantCwd, _ := filepath.EvalSymlinks(dataDir)
	at, err := procs.StartedAt(pid)
	switch {
	case exe != wantExe || cwd != wantCwd:
		return false, fmt.Sprintf("pid %d is now another process (%s in %s)", pid, exe, cwd)
	// Both times are wall-clock seconds; /proc's follows clock steps made
	// since boot only roughly, so they are compared loosely. The binary and
	// the data directory already tell this cluster's server from others.
	case err != nil || at.Unix() < started-30 || at.Unix() > started+30:
		return false, fmt.Sprintf("pid %d is another postgres than the one postmaster.pid recorded (started %s, recorded %s)",
			pid, at.Format(time.RFC3339), time.Unix(started, 0).Format(time.RFC3339))
	}
	return true, ""
}

// postgresState reads postmaster.pid the way procs.Check reads a pid file:
// the recorded pid counts only when it is provably this cluster's postmaster.
func (s *Stack) postgresState() procs.State {
	pidFile := filepath.Join(s.postgresDataDir(), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return procs.State{Reason: "not started (no " + pidFile + ")"}
	}
	lines := strings.Split(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	st := procs.State{Pid: pid}
	var started int64
	if len(lines) > 2 {
		started, _ = strconv.ParseInt(strings.TrimSpace(lines[2]), 10, 64)
	}
	switch {
	case pid <= 0 || started == 0:
		st.Reason = "unreadable " + pidFile
	case !procs.Alive(pid):
		st.Reason = fmt.Sprintf("postmaster pid %d has exited (pg_ctl started it detached, so its exit status was not seen)", pid)
	default:
		if ok, why := postmasterIs(pid, s.postgresDataDir(), started); ok {
			st.Running = true
		} else {
			st.Stale, st.Reason = true, "stale postmaster.pid: "+why
		}
	}
	return st
}

// clearStalePostmasterPid removes a postmaster.pid whose pid now belongs to
// another process (after a reboot): Postgres itself refuses to start while
// that pid lives. It is removed only when no server process works in the
// data directory, so no live backend of an old postmaster is missed.
func (s *Stack) clearStalePostmasterPid(st procs.State) error {
	data := s.postgresDataDir()
	wantExe, _ := filepath.EvalSymlinks(filepath.Join(pgcluster.BinDir(), "postgres"))
	wantCwd, _ := filepath.EvalSymlinks(data)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, cwd, err := procs.Identity(pid); err == nil && exe == wantExe && cwd == wantCwd && procs.Alive(pid) {
			return fmt.Errorf("%s; yet postgres pid %d still works in %s: stop it, then make up", st.Reason, pid, data)
		}
	}
	fmt.Fprintf(s.Out, "  %-18s %s; removed it\n", "postgres", st.Reason)
	return os.Remove(filepath.Join(data, "postmaster.pid"))
}

// stopPostgres asks the postmaster for a fast shutdown (SIGINT, what
// `pg_ctl stop -m fast` sends) and waits for it to exit, then for an
// immediate one (SIGQUIT). Only a provably ours postmaster is signalled.
func (s *Stack) stopPostgres() error {
	st := s.postgresState()
	if !st.Running {
		if st.Stale {
			fmt.Fprintf(s.Out, "  %-18s %s; left alone\n", "postgres", st.Reason)
		}
		return nil
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 60 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}} {
		if err := syscall.Kill(st.Pid, step.sig); err != nil {
			return fmt.Errorf("postgres (pid %d): %w", st.Pid, err)
		}
		for deadline := time.Now().Add(step.wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if !procs.Alive(st.Pid) {
				return nil
			}
		}
	}
	return fmt.Errorf("postgres (pid %d) did not stop after SIGINT and SIGQUIT; its log: %s", st.Pid, s.Path("postgres", "postgres.json"))
}
