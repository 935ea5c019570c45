package localstack_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/procs"
	"github.com/darktower/devstack/internal/testsupport"
)

// started is a devstack command running in the background.
type started struct {
	cmd  *exec.Cmd
	out  *testsupport.Buffer
	done chan struct{}
	err  error
}

// command prepares the real devstack program against d's state directory.
func (d *devstack) command(args ...string) (*exec.Cmd, *testsupport.Buffer) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "STATE_DIR="+d.stateDir, "BIN_DIR="+d.binDir, "PORT_BASE="+strconv.Itoa(d.base))
	out := &testsupport.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// startAll starts every command back to back, so they run at once.
func startAll(t *testing.T, cmds ...*exec.Cmd) []*started {
	t.Helper()
	var ss []*started
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		s := &started{cmd: c, out: c.Stdout.(*testsupport.Buffer), done: make(chan struct{})}
		go func() { s.err = c.Wait(); close(s.done) }()
		ss = append(ss, s)
	}
	t.Cleanup(func() {
		for _, s := range ss {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return ss
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestReadOnlyCommandsWriteNothing: status, verify and logs, several of
// each at once on a state directory without a stack, create nothing (they
// used to create secrets.json, racing each other and a concurrent up), do
// not touch the permissions of the state directory's parents, and say that
// nothing is running (issue 14 items 1, 5, 10; how fast:
// BenchmarkVerifyNothingRunning).
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	d := &devstack{t: t, bin: testsupport.Binary(t, "devstack"), binDir: t.TempDir(), base: freeBase(t)}
	parent := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	d.stateDir = filepath.Join(parent, "state")
	var cmds []*exec.Cmd
	for range 3 {
		for _, args := range [][]string{{"status"}, {"verify"}, {"logs", "-follow=false"}} {
			c, _ := d.command(args...)
			cmds = append(cmds, c)
		}
	}
	ss := startAll(t, cmds...)
	for _, s := range ss {
		<-s.done
	}
	if _, err := os.Stat(d.stateDir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(d.stateDir)
		t.Errorf("read-only commands created the state directory: %v %v", err, entries)
	}
	if fi, err := os.Stat(parent); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the state directory's parent changed mode: %v, %v", fi.Mode(), err)
	}
	for _, s := range ss {
		args := strings.Join(s.cmd.Args[1:], " ")
		switch {
		case args == "verify":
			if exitCode(s.err) != 2 || !strings.Contains(s.out.String(), "nothing is running: make up") {
				t.Errorf("verify without a stack: exit %d (want 2, SPEC section 8: no configuration)\n%s", exitCode(s.err), s.out)
			}
		case args == "status":
			if exitCode(s.err) != 1 || !strings.Contains(s.out.String(), "nothing is running: make up") {
				t.Errorf("status without a stack: exit %d (want 1)\n%s", exitCode(s.err), s.out)
			}
		}
	}
}

// TestTwoUpsAtOnce starts two `devstack up` and a `status` at the same
// instant on a fresh state directory: one up starts the stack, the other
// says at once which one is running, the secrets stay those Postgres got,
// and down leaves nothing running (issue 14 items 1, 2).
func TestTwoUpsAtOnce(t *testing.T) {
	d := newDevstack(t)
	a, _ := d.command("up")
	b, _ := d.command("up")
	st, _ := d.command("status")
	ss := startAll(t, a, b, st)
	winner, loser := ss[0], ss[1]
	select {
	case <-winner.done:
		winner, loser = loser, winner
	case <-loser.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("neither up returned within 5 s:\n%s\n---\n%s", ss[0].out, ss[1].out)
	}
	<-loser.done
	want := fmt.Sprintf("another `make up` (pid %d) is running in %s", winner.cmd.Process.Pid, d.stateDir)
	if loser.err == nil || !strings.Contains(loser.out.String(), want) {
		t.Errorf("the second up: %v, want it to say %q:\n%s", loser.err, want, loser.out)
	}
	if strings.Contains(loser.out.String(), "started") {
		t.Errorf("the second up started something:\n%s", loser.out)
	}
	<-winner.done
	if winner.err != nil || !strings.Contains(winner.out.String(), "verified healthy") {
		t.Fatalf("the first up: %v\n%s", winner.err, winner.out)
	}
	<-ss[2].done
	// A down racing a down: one stops the stack, the other says so.
	x, _ := d.command("down")
	y, _ := d.command("down")
	downs := startAll(t, x, y)
	<-downs[0].done
	<-downs[1].done
	okCount := 0
	for _, s := range downs {
		if s.err == nil {
			okCount++
		} else if !strings.Contains(s.out.String(), "another `make down`") {
			t.Errorf("a racing down failed without naming the other: %v\n%s", s.err, s.out)
		}
	}
	if okCount == 0 {
		t.Errorf("neither down succeeded:\n%s\n---\n%s", downs[0].out, downs[1].out)
	}
	if names := d.layout().Tracked(); len(names) != 0 {
		t.Errorf("pid files left after down: %v", names)
	}
	// The secrets on disk are the ones the cluster was made with.
	if out := d.up(); !strings.Contains(out, "verified healthy") || strings.Contains(out, "initdb") {
		t.Errorf("up after the race:\n%s", out)
	}
}

// TestFaultsDuringUp runs one stack through the faults of issue 14: a
// devstack killed during initdb, pid files naming other processes (a
// reboot), children that die while up waits for them, Ctrl-C, and what
// status and verify say with processes stopped (items 3, 4, 5, 10).
func TestFaultsDuringUp(t *testing.T) {
	d := newDevstack(t)
	pgDir := filepath.Join(d.stateDir, "postgres")

	t.Run("killed-during-initdb", func(t *testing.T) {
		cmd, out := d.command("up")
		ss := startAll(t, cmd)
		pwfile := filepath.Join(pgDir, ".pwfile")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(pwfile); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s appeared:\n%s", pwfile, out)
			}
		}
		_ = cmd.Process.Kill()
		<-ss[0].done
		waitInitdbGone(t, pgDir)
		if _, err := os.Stat(pwfile); err != nil {
			t.Fatalf("the password file did not outlive the killed devstack (%v): the test no longer reproduces the fault", err)
		}
		// d.run, not d.up: a failure must end this subtest, not its parent.
		upOut, err := d.run("up")
		if err != nil {
			t.Fatalf("devstack up: %v\n%s\n%s", err, upOut, d.logs())
		}
		if !strings.Contains(upOut, "removed the password file") {
			t.Errorf("up did not say it removed the leftover password file:\n%s", upOut)
		}
		if _, err := os.Stat(pwfile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after up: %v", pwfile, err)
		}
	})

	t.Run("status-names-stopped", func(t *testing.T) {
		if err := syscall.Kill(d.pid("redis-exporter"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		out, err := d.run("status")
		if exitCode(err) != 1 || !regexp.MustCompile(`redis-exporter +stopped: pid \d+ has exited`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^redis +running \(pid \d+\)$`).MatchString(out) {
			t.Errorf("status with redis-exporter killed: exit %d\n%s", exitCode(err), out)
		}
	})

	t.Run("nothing-running", func(t *testing.T) {
		if out, err := d.run("down"); err != nil {
			t.Fatalf("down: %v\n%s", err, out)
		}
		// How fast it answers is BenchmarkVerifyNothingRunning's to measure.
		out, err := d.run("verify")
		if exitCode(err) != 1 || !strings.Contains(out, "nothing is running: make up") {
			t.Errorf("verify with the stack stopped: exit %d (want 1: SPEC section 8, checks fail)\n%s", exitCode(err), out)
		}
		out, err = d.run("status")
		if exitCode(err) != 1 || strings.Count(out, "stopped: ") != 12 {
			t.Errorf("status with the stack stopped: exit %d\n%s", exitCode(err), out)
		}
	})

	t.Run("stale-pid-files", func(t *testing.T) {
		// After a reboot the recorded pids belong to other processes.
		sleep := exec.Command("sleep", "600")
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
		pid := sleep.Process.Pid
		write := func(path, content string) {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(filepath.Join(d.stateDir, "run", "redis.pid"), fmt.Sprintf("%d\n/usr/bin/redis-server\n", pid))
		write(filepath.Join(pgDir, "data", "postmaster.pid"), fmt.Sprintf("%d\n%s\n%d\n%d\n%s\n127.0.0.1\n  1234567     65536\nready   \n",
			pid, filepath.Join(pgDir, "data"), time.Now().Add(-time.Hour).Unix(), d.base, pgDir))
		out, err := d.run("down")
		if err != nil || !procs.Alive(pid) {
			t.Fatalf("down with stale pid files: %v, sleep alive %v\n%s", err, procs.Alive(pid), out)
		}
		if !strings.Contains(out, "stale postmaster.pid") {
			t.Errorf("down does not say postmaster.pid is stale:\n%s", out)
		}
		write(filepath.Join(d.stateDir, "run", "redis.pid"), fmt.Sprintf("%d\n/usr/bin/redis-server\n", pid))
		out = d.up()
		if strings.Contains(out, "already running") || !strings.Contains(out, "verified healthy") || !procs.Alive(pid) {
			t.Errorf("up over stale pid files (sleep alive %v):\n%s", procs.Alive(pid), out)
		}
		if !strings.Contains(out, "stale pid file") || !strings.Contains(out, "stale postmaster.pid") {
			t.Errorf("up does not say which pid files were stale:\n%s", out)
		}
		if out, err := d.run("down"); err != nil || !procs.Alive(pid) {
			t.Fatalf("down: %v, sleep alive %v\n%s", err, procs.Alive(pid), out)
		}
	})

	t.Run("redis-dies-at-start", func(t *testing.T) {
		aofs, _ := filepath.Glob(filepath.Join(d.stateDir, "redis", "appendonlydir", "*.incr.aof"))
		if len(aofs) != 1 {
			t.Fatalf("Redis AOF files: %v", aofs)
		}
		appendUntilCleanup(t, aofs[0], "*1\r\n$7\r\nbadcmd!\r\n")
		out := d.upFailsFast(t)
		// Redis may die before Launch returns ("exited at once") or during
		// the readiness wait ("exited while starting"): the same report.
		if !redisExited.MatchString(out) || !strings.Contains(out, "last lines of "+d.layout().LogFile("redis")) ||
			!strings.Contains(out, "badcmd!") {
			t.Errorf("up does not report Redis's exit with its own last words:\n%s", out)
		}
		if goRedisLog.MatchString(out) || strings.Contains(out, "dial tcp") {
			t.Errorf("go-redis chatter reached the terminal:\n%s", out)
		}
		if out, err := d.run("down"); err != nil {
			t.Fatalf("down: %v\n%s", err, out)
		}
	})

	t.Run("postgres-dies-before-logging", func(t *testing.T) {
		auto := filepath.Join(pgDir, "data", "postgresql.auto.conf")
		appendUntilCleanup(t, auto, "shared_buffers = 'plenty'\n")
		out := d.upFailsFast(t)
		if !strings.Contains(out, "last lines of "+filepath.Join(pgDir, "postgres.log")) || !strings.Contains(out, `invalid value for parameter "shared_buffers"`) {
			t.Errorf("up does not show what Postgres wrote to postgres.log:\n%s", out)
		}
		if out, err := d.run("down"); err != nil {
			t.Fatalf("down: %v\n%s", err, out)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		cmd, out := d.command("up")
		ss := startAll(t, cmd)
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "started"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("up started nothing in 30 s:\n%s", out)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		<-ss[0].done
		if exitCode(ss[0].err) != 130 || !strings.Contains(out.String(), "up interrupted") {
			t.Errorf("up after Ctrl-C: exit %d\n%s", exitCode(ss[0].err), out)
		}
		if out, err := d.run("down"); err != nil {
			t.Fatalf("down: %v\n%s", err, out)
		}
	})
}

var (
	redisExited = regexp.MustCompile(`redis (exited while starting: |\(pid \d+\) exited at once \()exit status 1`)
	// go-redis's own logger: "redis: 2026/12/02 10:08:05 ...".
	goRedisLog = regexp.MustCompile(`redis: \d{4}/\d{2}/\d{2} `)
)

// appendUntilCleanup appends extra to path until the (sub)test ends.
func appendUntilCleanup(t *testing.T, path, extra string) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(path, orig, 0o600) })
	if err := os.WriteFile(path, append(append([]byte{}, orig...), extra...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// upFailsFast runs up, which must fail well before its 60 s wait for a
// process to become ready, and returns its output.
func (d *devstack) upFailsFast(t *testing.T) string {
	t.Helper()
	began := time.Now()
	out, err := d.run("up")
	if err == nil {
		t.Fatalf("up succeeded:\n%s", out)
	}
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("up took %v to notice its process had exited", took)
	}
	return out
}

// waitInitdbGone waits until no initdb (or the postgres it runs) works on
// dir: the killed devstack's initdb runs on in its own session.
func waitInitdbGone(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		busy := false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && bytes.Contains(b, []byte(dir)) && (bytes.Contains(b, []byte("initdb")) || bytes.Contains(b, []byte("postgres\x00--"))) {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
	t.Fatal("initdb still running after 60 s")
}

// TestLogsFollowsFilesByName: make logs keeps following across make clean
// and make up: files replaced or created after it started are read from
// their start (issue 14 item 8).
func TestLogsFollowsFilesByName(t *testing.T) {
	d := &devstack{t: t, bin: testsupport.Binary(t, "devstack"), binDir: t.TempDir(), stateDir: t.TempDir(), base: freeBase(t)}
	l := localstack.Layout{StateDir: d.stateDir, Base: d.base}
	appendLine := func(name, line string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(l.LogFile(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(l.LogFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, line)
		f.Close()
	}
	appendLine("ac-0", "before logs started")
	cmd, out := d.command("logs")
	ss := startAll(t, cmd)
	waitOutput := func(name, text string) {
		t.Helper()
		want := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +\| ` + regexp.QuoteMeta(text) + `$`)
		for deadline := time.Now().Add(10 * time.Second); !want.MatchString(out.String()); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("make logs did not show %s's line %q:\n%s", name, text, out)
			}
		}
	}
	waitOutput("ac-0", "before logs started")
	appendLine("ac-0", "appended")
	waitOutput("ac-0", "appended")
	// make clean, then make up: the same names, new files.
	if err := os.RemoveAll(d.stateDir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	appendLine("ac-0", "after clean")
	appendLine("mc-1", "a process new since logs started")
	waitOutput("ac-0", "after clean")
	waitOutput("mc-1", "a process new since logs started")
	_ = cmd.Process.Signal(syscall.SIGINT)
	<-ss[0].done
	if ss[0].err != nil {
		t.Errorf("logs after Ctrl-C: %v", ss[0].err)
	}
}
