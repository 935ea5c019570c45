// Package procs starts and tracks detached, long-running processes by pid file,
// for local mode (internal/localstack) and the node (internal/node): each runs
// in its own session with its output in logs/<name>.log, and run/<name>.pid
// lets a later command, from any shell, find and stop it.
package procs

import (
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
	Env  map[string]string // exactly what the process gets, plus PATH and HOME
}

// Dir is a directory holding run/<name>.pid and logs/<name>.log; processes
// start with it as their working directory.
type Dir string

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// pidFile is where a process is tracked.
func (d Dir) pidFile(name string) string { return d.path("run", name+".pid") }

// LogFile is where a process's output goes.
func (d Dir) LogFile(name string) string { return d.path("logs", name+".log") }

// Start launches p detached and records its pid.
func (d Dir) Start(p Proc) (int, error) {
	cmd, err := d.command(p)
	if err != nil {
		return 0, err
	}
	err = cmd.Start()
	cmd.Stdout.(*os.File).Close() // the child has its own copy
	if err != nil {
		return 0, fmt.Errorf("starting %s (%s): %w", p.Name, p.Path, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while this program still runs; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(d.pidFile(p.Name), []byte(strconv.Itoa(pid)+"\n"+p.Path+"\n"), 0o644); err != nil {
		return pid, err
	}
	return pid, nil
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
	cmd.Env = Environ(p.Env)
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

// Running returns the pid of a tracked process that is still alive and still
// runs the same program (a reused pid is not ours).
func (d Dir) Running(name string) (int, bool) {
	b, err := os.ReadFile(d.pidFile(name))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(lines[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if !Alive(pid) {
		return pid, false
	}
	if len(lines) > 1 {
		// /proc/<pid>/exe is the resolved file (Debian's redis-server is a symlink).
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		want, werr := filepath.EvalSymlinks(lines[1])
		if err == nil && werr == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != filepath.Base(want) {
			return pid, false
		}
	}
	return pid, true
}

// Alive reports whether pid runs: it exists and is not a zombie (exited,
// not yet collected by its parent).
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A zombie has exited; only its parent has not collected it yet.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// Stop sends SIGTERM to the process's whole group, waits up to grace, then
// SIGKILLs what is left, and removes the pid file. Nothing is left orphaned.
func (d Dir) Stop(name string, grace time.Duration) error {
	pid, ok := d.Running(name)
	defer os.Remove(d.pidFile(name))
	if !ok {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM) // the group: Setsid made pid its leader
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Alive(pid) && !groupAlive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	if Alive(pid) {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", name, pid)
	}
	return nil
}

// groupAlive reports whether any process is left in process group pgid.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
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
