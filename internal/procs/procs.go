// Package procs starts and tracks detached, long-running processes by pid file,
// for local mode (internal/localstack) and the node (internal/node): each runs
// in its own session with its output in logs/<name>.log, and run/<name>.pid
// lets a later command, from any shell, find and stop it.
package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one long-running process. It runs in its own session (so closing
// the terminal that started it does not stop it).
type Proc struct {
	Name string
	Path string
	Args []string
	Env  map[string]string // exactly what the process gets, plus PATH, HOME and the marker
}

// markerVar is in the environment of every process started here, naming the
// directory and the name it was started for. A command killed between
// starting a child and writing its pid file leaves that child running
// unrecorded; the marker lets the next command find it (Unrecorded).
const markerVar = "DARKTOWER_PROC"

func (d Dir) marker(name string) string { return markerVar + "=" + d.abs() + "/" + name }

// Dir is a directory holding run/<name>.pid and logs/<name>.log; processes
// start with it as their working directory.
type Dir string

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// pidFile is where a process is tracked.
func (d Dir) pidFile(name string) string { return d.path("run", name+".pid") }

// exitFile is where Launch records how a process ended.
func (d Dir) exitFile(name string) string { return d.path("run", name+".exit") }

// LogFile is where a process's output goes.
func (d Dir) LogFile(name string) string { return d.path("logs", name+".log") }

// Start launches p detached and records its pid.
func (d Dir) Start(p Proc) (int, error) {
	c, err := d.Launch(p)
	if c == nil {
		return 0, err
	}
	return c.Pid, err
}

// Child is a process Launch started; Done closes when it exits while this
// program still runs, and Status then says how it ended.
type Child struct {
	Pid    int
	Done   <-chan struct{}
	status string
}

// Status is how the child ended ("exit status 1", "signal: killed"); empty
// while it runs.
func (c *Child) Status() string {
	select {
	case <-c.Done:
		return c.status
	default:
		return ""
	}
}

// Launch starts p detached and records its pid with what identifies the
// process (boot, start time, executable), so a later command never mistakes a
// reused pid for it. While this program runs it reaps the child and writes
// how it ended to run/<name>.exit; after this program exits, init reaps it.
func (d Dir) Launch(p Proc) (*Child, error) {
	cmd, err := d.command(p)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(d.exitFile(p.Name)) // a previous run's ending
	err = cmd.Start()
	cmd.Stdout.(*os.File).Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", p.Name, p.Path, err)
	}
	done := make(chan struct{})
	c := &Child{Pid: cmd.Process.Pid, Done: done}
	// Start returns after the exec, so exe is the program's, and the start
	// time is the fork's; both are read before the child could be reaped.
	id, idErr := identify(c.Pid)
	var werr error
	if idErr == nil {
		rec := fmt.Sprintf("%d\n%s\nboot=%s\nstart=%d\nexe=%s\n", c.Pid, p.Path, bootID(), id.start, id.exe)
		werr = writeAtomic(d.pidFile(p.Name), []byte(rec))
	}
	go func() {
		err := cmd.Wait()
		c.status = "exit status 0"
		if err != nil {
			c.status = err.Error()
		}
		if Recorded(d.pidFile(p.Name)) == c.Pid {
			_ = os.WriteFile(d.exitFile(p.Name), []byte(c.status+"\n"), 0o644)
		}
		close(done)
	}()
	if idErr != nil {
		if Alive(c.Pid) {
			// Untracked it could not be stopped later; it is our own child.
			_ = syscall.Kill(-c.Pid, syscall.SIGKILL)
			return c, fmt.Errorf("%s (pid %d) killed: its identity is unreadable: %w", p.Name, c.Pid, idErr)
		}
		// Its executable is unreadable once it has exited.
		<-done
		return c, fmt.Errorf("%s (pid %d) exited at once (%s)", p.Name, c.Pid, c.status)
	}
	return c, werr
}

// writeAtomic replaces path with b through a rename, so a reader never sees
// half a pid file.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// RunOnce runs p to completion with its output in its log file.
func (d Dir) RunOnce(ctx context.Context, p Proc) error {
	cmd, err := d.command(p)
	if err != nil {
		return err
	}
	err = cmd.Start()
	cmd.Stdout.(*os.File).Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("starting %s (%s): %w", p.Name, p.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s: %w", p.Name, ctx.Err())
	}
}

func (d Dir) command(p Proc) (*exec.Cmd, error) {
	for _, d := range []string{d.path("run"), d.path("logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(d.LogFile(p.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(Environ(p.Env), d.marker(p.Name))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = string(d)
	return cmd, nil
}

// Environ is the environment a child process gets: exactly env, plus PATH
// and HOME, in a stable order.
func Environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Running returns the pid of a tracked process that is still alive and
// provably the one started (see Check); the pid is returned even when not.
func (d Dir) Running(name string) (int, bool) {
	st := d.Check(name)
	return st.Pid, st.Running
}

// State is what a pid file says about its process.
type State struct {
	Pid     int    // the recorded pid, 0 without a pid file
	Running bool   // alive and provably the process that was started
	Stale   bool   // the pid is alive but not provably ours: never signal it
	Reason  string // why not running, for people
}

// Check reads run/<name>.pid. The pid counts as ours only when the process
// has the recorded boot and start time (/proc/<pid>/stat field 22: no two
// processes share them) and is the recorded executable or runs in d, where
// it was started (a wrapper that execs its program changes executable); a
// pid reused after a reboot or by the kernel is another process, and a
// process whose identity cannot be read is not provably ours.
func (d Dir) Check(name string) State {
	b, err := os.ReadFile(d.pidFile(name))
	if err != nil {
		return State{Reason: "not started (no pid file " + d.pidFile(name) + ")"}
	}
	rec := parseRecord(b)
	st := State{Pid: rec.pid}
	switch {
	case rec.pid <= 0:
		st.Reason = "unreadable pid file " + d.pidFile(name)
	case !Alive(rec.pid):
		st.Reason = fmt.Sprintf("pid %d has exited", rec.pid)
		if e, err := os.ReadFile(d.exitFile(name)); err == nil {
			st.Reason += " (" + strings.TrimSpace(string(e)) + ")"
		} else {
			st.Reason += " (its exit status was not seen: it ran detached after devstack up returned)"
		}
	default:
		id, err := identify(rec.pid)
		switch {
		case err != nil:
			st.Stale, st.Reason = true, fmt.Sprintf("stale pid file: pid %d is alive but its identity cannot be read (%v), so it is not provably ours", rec.pid, err)
		case rec.start == 0 || rec.boot == "":
			st.Stale, st.Reason = true, fmt.Sprintf("stale pid file: it records no boot and start time, so pid %d (%s) is not provably ours", rec.pid, id.exe)
		case rec.boot != bootID():
			st.Stale, st.Reason = true, fmt.Sprintf("stale pid file from before a reboot: pid %d is now another process (%s)", rec.pid, id.exe)
		case id.start != rec.start || (id.exe != rec.exe && id.cwd != d.abs()):
			st.Stale, st.Reason = true, fmt.Sprintf("stale pid file: pid %d is now another process (%s, started at tick %d; recorded %s at tick %d)", rec.pid, id.exe, id.start, rec.exe, rec.start)
		default:
			st.Running = true
		}
	}
	return st
}

// Recorded is the pid a pid file names, 0 when there is none.
func Recorded(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	return parseRecord(b).pid
}

type record struct {
	pid   int
	boot  string
	start uint64
	exe   string
}

// parseRecord reads a pid file: the pid, the program as started, then
// boot=<boot id>, start=<ticks> and exe=<path> (older files have none).
func parseRecord(b []byte) record {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var r record
	r.pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(l, "boot="); ok {
			r.boot = v
		} else if v, ok := strings.CutPrefix(l, "start="); ok {
			r.start, _ = strconv.ParseUint(v, 10, 64)
		} else if v, ok := strings.CutPrefix(l, "exe="); ok {
			r.exe = v
		}
	}
	return r
}

// identity is what tells one process from another that later got its pid.
type identity struct {
	start uint64 // clock ticks after boot, /proc/<pid>/stat field 22
	exe   string // the executable, as /proc/<pid>/exe resolves it
	cwd   string // its working directory, "" when unreadable
}

func identify(pid int) (identity, error) {
	start, _, _, err := Stat(pid)
	if err != nil {
		return identity{}, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		// A kernel thread has no executable; one we cannot read is not ours.
		return identity{}, fmt.Errorf("no readable executable: %w", err)
	}
	cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	// A binary rebuilt while it runs (make build) shows as "(deleted)".
	return identity{start: start, exe: strings.TrimSuffix(exe, " (deleted)"), cwd: cwd}, nil
}

// bootID tells this boot from the previous ones: start times count from boot.
func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// abs is d as an absolute path, as /proc/<pid>/cwd shows it.
func (d Dir) abs() string {
	a, err := filepath.Abs(string(d))
	if err != nil {
		return string(d)
	}
	if r, err := filepath.EvalSymlinks(a); err == nil {
		return r
	}
	return a
}

// Stat reads /proc/<pid>/stat: the start time in clock ticks after boot
// (field 22), the process group (field 5) and the state (field 3, 'Z' for
// a zombie).
func Stat(pid int) (start uint64, pgrp int, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	pgrp, _ = strconv.Atoi(f[2])
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, pgrp, f[0][0], err
}

// Alive reports whether pid runs: it exists and is not a zombie (exited,
// not yet collected by its parent).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	_, _, state, err := Stat(pid)
	return err != nil || state != 'Z'
}

// Stop sends SIGTERM to the process's whole group, waits up to grace, then
// SIGKILLs what is left, and removes the pid file. Nothing is left orphaned.
// A pid that is not provably ours (Check) is never signalled.
func (d Dir) Stop(name string, grace time.Duration) error {
	st := d.Check(name)
	defer os.Remove(d.exitFile(name))
	defer os.Remove(d.pidFile(name))
	if !st.Running {
		return nil
	}
	return stopGroup(name, st.Pid, grace)
}

// Unrecorded finds the processes started here that no pid file names, by
// name: session leaders of this user carrying the marker of d, other than
// the recorded processes (their own children carry it too, but lead no
// session).
func (d Dir) Unrecorded() map[string][]int {
	prefix := []byte(d.marker(""))
	found := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, pgrp, state, err := Stat(pid); err != nil || pgrp != pid || state == 'Z' {
			continue
		}
		var fi syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name(), &fi) != nil || int(fi.Uid) != os.Geteuid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if name, ok := bytes.CutPrefix(kv, prefix); ok && len(name) > 0 && !bytes.ContainsRune(name, '/') {
				if st := d.Check(string(name)); !st.Running || st.Pid != pid {
					found[string(name)] = append(found[string(name)], pid)
				}
				break
			}
		}
	}
	return found
}

// StopUnrecorded stops what Unrecorded finds, as Stop does, and says which.
func (d Dir) StopUnrecorded(grace time.Duration) (map[string][]int, error) {
	found := d.Unrecorded()
	var errs []error
	for name, pids := range found {
		for _, pid := range pids {
			errs = append(errs, stopGroup(name, pid, grace))
		}
	}
	return found, errors.Join(errs...)
}

// stopGroup stops pid's process group: SIGTERM, up to grace, then SIGKILL.
func stopGroup(name string, pid int, grace time.Duration) error {
	_ = syscall.Kill(-pid, syscall.SIGTERM) // the group: Setsid made pid its leader
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Alive(pid) && !groupAlive(pid) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 50 {
		if !Alive(pid) && !groupAlive(pid) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) survived SIGKILL", name, pid)
}

// groupAlive reports whether a process that has not exited is left in
// process group pgid. Zombies do not count: they have exited, and whoever
// reaps them (init, long after we stopped them) may take its time.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, pgrp, state, err := Stat(pid); err == nil && pgrp == pgid && state != 'Z' {
			return true
		}
	}
	return false
}

// Tracked lists the names that have pid files.
func (d Dir) Tracked() []string {
	entries, _ := os.ReadDir(d.path("run"))
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".pid"); ok {
			names = append(names, n)
		}
	}
	return names
}

// StartedAt is when pid started, from its start time in clock ticks after
// boot (USER_HZ, 100 on Linux) and the boot time in /proc/stat.
func StartedAt(pid int) (time.Time, error) {
	ticks, _, _, err := Stat(pid)
	if err != nil {
		return time.Time{}, err
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime: %w", err)
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / 100), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat: no btime")
}

// Identity returns pid's executable and working directory as /proc shows
// them; an error when they cannot be read (a kernel thread, another user's
// process), so the process is not provably anyone's.
func Identity(pid int) (exe, cwd string, err error) {
	id, err := identify(pid)
	if err == nil && id.cwd == "" {
		err = fmt.Errorf("pid %d: unreadable working directory", pid)
	}
	return id.exe, id.cwd, err
}
