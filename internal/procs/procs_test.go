package procs_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/procs"
)

// unrelated starts a process that is not ours to stop: a plain sleep.
func unrelated(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func writePidFile(t *testing.T, d procs.Dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(string(d), "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(d), "run", name+".pid"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStalePidFileIsNeverSignalled: a pid file naming a process that is not
// provably the one started (a reused pid after a reboot, an old pid file
// without a start time, a kernel thread) counts as stale, says so, and Stop
// leaves the process alone and returns at once (issue 14 item 3).
func TestStalePidFileIsNeverSignalled(t *testing.T) {
	sleep := unrelated(t)
	pid := sleep.Process.Pid
	start, _, _, err := procs.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	id := func(boot string, start uint64, exe string) string {
		return fmt.Sprintf("%d\n%s\nboot=%s\nstart=%d\nexe=%s\n", pid, exe, strings.TrimSpace(boot), start, exe)
	}
	cases := []struct{ name, content, reason string }{
		{"one-line", fmt.Sprintf("%d\n", pid), "records no boot and start time"},
		{"old-format", fmt.Sprintf("%d\n/usr/bin/sleep\n", pid), "records no boot and start time"},
		{"other-program", id(string(boot), start, "/usr/bin/redis-check-rdb"), "is now another process"},
		{"reused-pid", id(string(boot), start+1, exe), "is now another process"},
		{"before-reboot", id("00000000-0000-0000-0000-000000000000", start, exe), "from before a reboot"},
		{"kernel-thread", "2\n/usr/bin/redis-server\nboot=x\nstart=5\nexe=/usr/bin/redis-check-rdb\n", "identity cannot be read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := procs.Dir(t.TempDir())
			writePidFile(t, d, "redis", c.content)
			st := d.Check("redis")
			if st.Running || !st.Stale || !strings.Contains(st.Reason, c.reason) {
				t.Fatalf("Check = %+v, want stale with %q", st, c.reason)
			}
			if _, ok := d.Running("redis"); ok {
				t.Fatal("Running counts a stale pid file as ours")
			}
			began := time.Now()
			if err := d.Stop("redis", 5*time.Second); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if took := time.Since(began); took > time.Second {
				t.Errorf("Stop on a stale pid file took %v", took)
			}
			if !procs.Alive(pid) {
				t.Fatal("Stop killed a process that was not ours")
			}
			if _, err := os.Stat(filepath.Join(string(d), "run", "redis.pid")); !os.IsNotExist(err) {
				t.Errorf("the stale pid file was kept: %v", err)
			}
		})
	}
}

// TestLaunchRecordsIdentityAndEnding: a launched process is ours by start
// time and executable, and how it ended is kept for status.
func TestLaunchRecordsIdentityAndEnding(t *testing.T) {
	d := procs.Dir(t.TempDir())
	c, err := d.Launch(procs.Proc{Name: "sleeper", Path: "/bin/sleep", Args: []string{"600"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := d.Check("sleeper"); !st.Running || st.Pid != c.Pid {
		t.Fatalf("Check after Launch = %+v", st)
	}
	if err := syscall.Kill(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close after the child was killed")
	}
	if got := c.Status(); got != "signal: killed" {
		t.Errorf("Status = %q", got)
	}
	if st := d.Check("sleeper"); st.Running || !strings.Contains(st.Reason, "signal: killed") {
		t.Errorf("Check after the kill = %+v, want the ending in the reason", st)
	}
	if _, err := d.Launch(procs.Proc{Name: "false", Path: "/bin/false"}); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		// /bin/false may still be running when Launch reads its identity;
		// then its ending shows in Check instead.
		if st := d.Check("false"); err == nil && !waitReason(d, "false", "exit status 1") {
			t.Errorf("a program that exits at once: Launch err %v, Check %+v", err, st)
		}
	}
}

func waitReason(d procs.Dir, name, want string) bool {
	for range 100 {
		if strings.Contains(d.Check(name).Reason, want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestStopDoesNotWaitForZombies: a process that exited counts as stopped
// even before its parent reaps it. This test process becomes a child
// subreaper and never reaps the orphans it adopts, like a slow init
// (issue 14 item 9: each stage of make down waited ~2 s for init).
func TestStopDoesNotWaitForZombies(t *testing.T) {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0)
	d := procs.Dir(t.TempDir())
	// The shell's background child stays in the group; after the exec the
	// group leader never waits for it, so it lingers as a zombie once it
	// exits, then as the subreaper's unreaped orphan once the leader is gone.
	c, err := d.Launch(procs.Proc{Name: "group", Path: "/bin/sh", Args: []string{"-c", "sleep 0.1 & exec sleep 600"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	if err := d.Stop("group", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	<-c.Done
	reapGroup(t, c.Pid)
	if took > time.Second {
		t.Errorf("Stop took %v for a group whose processes had all exited (zombies waiting to be reaped)", took)
	}
}

// reapGroup collects the zombies of process group pgid this test adopted.
func reapGroup(t *testing.T, pgid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, pgrp, _, err := procs.Stat(pid); err == nil && pgrp == pgid {
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				t.Logf("reaping pid %d: %v", pid, err)
			}
		}
	}
}

// TestUnrecordedChildIsStopped: a child whose pid file was never written (its
// starter was killed between starting and recording it) is found by the
// marker in its environment and stopped; recorded processes, their own
// children and another directory's processes are left alone.
func TestUnrecordedChildIsStopped(t *testing.T) {
	d, other := procs.Dir(t.TempDir()), procs.Dir(t.TempDir())
	t.Cleanup(func() {
		for _, dir := range []procs.Dir{d, other} {
			for _, name := range []string{"tracked", "lost"} {
				_ = dir.Stop(name, time.Second)
			}
			_, _ = dir.StopUnrecorded(time.Second)
		}
	})
	launch := func(dir procs.Dir, name, script string) int {
		t.Helper()
		pid, err := dir.Start(procs.Proc{Name: name, Path: "/bin/sh", Args: []string{"-c", script}})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// The tracked one forks a child of its own, marked but no session leader.
	tracked := launch(d, "tracked", "sleep 600 & wait")
	lost := launch(d, "lost", "exec sleep 600")
	elsewhere := launch(other, "lost", "exec sleep 600")
	for _, dir := range []procs.Dir{d, other} {
		if err := os.Remove(filepath.Join(string(dir), "run", "lost.pid")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the tracked one's sleep has started
	found, err := d.StopUnrecorded(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || len(found["lost"]) != 1 || found["lost"][0] != lost {
		t.Errorf("StopUnrecorded found %v, want map[lost:[%d]]", found, lost)
	}
	if procs.Alive(lost) {
		t.Errorf("the unrecorded child (pid %d) still runs", lost)
	}
	if !procs.Alive(tracked) {
		t.Errorf("the recorded process (pid %d) was stopped", tracked)
	}
	if !procs.Alive(elsewhere) {
		t.Errorf("another directory's unrecorded process (pid %d) was stopped", elsewhere)
	}
	if got := other.Unrecorded(); len(got["lost"]) != 1 || got["lost"][0] != elsewhere {
		t.Errorf("the other directory's Unrecorded: %v, want map[lost:[%d]]", got, elsewhere)
	}
}
