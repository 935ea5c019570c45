package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/procs"
	"github.com/darktower/devstack/internal/secret"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// freeBase finds a port base whose whole span is free.
func freeBase(t testing.TB) int {
	t.Helper()
	for range 50 {
		// Below Linux's ephemeral range (32768 and up), so other tests'
		// outgoing connections never hold ports of the set.
		base := 20000 + rand.IntN(120)*100
		ok := true
		for p := base; p < base+localstack.PortSpan && ok; p++ {
			ok = localstack.CheckPort(p, false) == nil && localstack.CheckPort(p, true) == nil
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range found")
	return 0
}

// devstack runs the real command-line program against a state directory.
type devstack struct {
	t        testing.TB
	bin      string
	binDir   string
	stateDir string
	base     int
}

func newDevstack(t testing.TB) *devstack {
	t.Helper()
	var binDir string
	for _, b := range []string{"ac-service", "global-controller", "meeting-controller", "db-migrate", "verifier"} {
		binDir = filepath.Dir(testsupport.Binary(t, b))
	}
	d := &devstack{t: t, bin: testsupport.Binary(t, "devstack"), binDir: binDir, stateDir: t.TempDir(), base: freeBase(t)}
	t.Cleanup(func() {
		if out, err := d.run("down"); err != nil {
			t.Errorf("cleanup down: %v\n%s", err, out)
		}
		if left := procs.Dir(d.stateDir).Unrecorded(); len(left) > 0 {
			t.Errorf("processes of %s still running after down: %v", d.stateDir, left)
		}
	})
	return d
}

func (d *devstack) run(args ...string) (string, error) { return d.runEnv(nil, args...) }

func (d *devstack) runEnv(env []string, args ...string) (string, error) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "STATE_DIR="+d.stateDir, "BIN_DIR="+d.binDir, "PORT_BASE="+strconv.Itoa(d.base))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (d *devstack) up() string {
	d.t.Helper()
	out, err := d.run("up")
	if err != nil {
		d.t.Fatalf("devstack up: %v\n%s\n%s", err, out, d.logs())
	}
	return out
}

func (d *devstack) logs() string {
	out, _ := d.run("logs", "-follow=false")
	return out
}

func (d *devstack) layout() localstack.Layout {
	return localstack.Layout{StateDir: d.stateDir, Base: d.base}
}

type joinAnswer struct {
	ControllerID string `json:"controller_id"`
	URL          string `json:"webtransport_url"`
}

// join runs the join command `up` prints: a web-client token from AC, then
// the join at GC with it.
func join(t *testing.T, d *devstack, code string) joinAnswer {
	t.Helper()
	out, err := exec.Command("sh", "-c", d.topology().JoinCommand(code, "")).CombinedOutput()
	var j joinAnswer
	if err != nil || json.Unmarshal(out, &j) != nil || j.ControllerID == "" {
		t.Fatalf("join %s: %v: %s", code, err, out)
	}
	return j
}

// topology is the stack's wiring; its secrets are not needed for addresses.
func (d *devstack) topology() *localstack.Topology {
	return d.layout().Topology(localstack.Secrets{}, secret.New(""), secret.New(""))
}

func TestUpDownUpReusesData(t *testing.T) {
	d := newDevstack(t)
	out := d.up()
	for _, want := range []string{"postgres           started", "initdb", "mc-1               started", "prometheus         started", "GC API", "16 passed, 0 failed", "verified healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	if want := "join a meeting " + d.topology().JoinCommand("demo", strings.Repeat(" ", 17)); !strings.Contains(out, want) {
		t.Errorf("up output lacks %q:\n%s", want, out)
	}
	first := join(t, d, "persisted-1")

	if out, err := d.run("down"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	ls, err := localstack.Open(d.stateDir, d.base, d.binDir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tcp, udp := ls.Ports()
	if len(tcp) < 14 || len(udp) != 2 {
		t.Fatalf("the stack lists %d TCP and %d UDP ports", len(tcp), len(udp))
	}
	for _, p := range tcp {
		if err := localstack.CheckPort(p, false); err != nil {
			t.Errorf("after down: %v", err)
		}
	}
	for _, p := range udp {
		if err := localstack.CheckPort(p, true); err != nil {
			t.Errorf("after down: %v", err)
		}
	}
	if names := d.layout().Tracked(); len(names) != 0 {
		t.Errorf("pid files left after down: %v", names)
	}

	began := time.Now()
	out = d.up()
	if strings.Contains(out, "initdb") {
		t.Errorf("second up ran initdb again:\n%s", out)
	}
	t.Logf("warm up took %v", time.Since(began))

	// The Redis AOF and the Postgres cluster kept what the first run wrote.
	st, err := d.layout().LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", d.base+1), Password: st.RedisPassword})
	defer rc.Close()
	if got, err := rc.HGet(context.Background(), "meeting:persisted-1", "controller_id").Result(); err != nil || got != first.ControllerID {
		t.Errorf("redis meeting:persisted-1 after restart = %q, %v (want %s)", got, err, first.ControllerID)
	}
	var rows int
	pg := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", localstack.DatabaseUser, st.PostgresPassword, d.base, localstack.DatabaseName)
	conn, err := pgx.Connect(context.Background(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM meeting_assignments WHERE meeting_id = 'persisted-1'").Scan(&rows); err != nil || rows == 0 {
		t.Errorf("assignment rows for persisted-1 after restart: %d, %v", rows, err)
	}
	join(t, d, "persisted-1")
	join(t, d, "fresh-after-restart")

	// A second up with everything running changes nothing.
	if out := d.up(); strings.Count(out, "already running") != 12 {
		t.Errorf("idempotent up restarted something:\n%s", out)
	}
}

func TestBusyPortIsNamed(t *testing.T) {
	d := newDevstack(t)
	ln, err := (&net0{}).listen(d.base + 2) // AC 0's port
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := d.run("up")
	if err == nil {
		t.Fatalf("up succeeded with AC's port taken:\n%s", out)
	}
	want := fmt.Sprintf("port %d/tcp is in use by pid %d", d.base+2, os.Getpid())
	if !strings.Contains(out, want) || !strings.Contains(out, "PORT_BASE") {
		t.Fatalf("up output should say %q and mention PORT_BASE:\n%s", want, out)
	}
}

// TestKillEachKindThenVerifyAndRecover kills one process of each kind while
// the stack is up: `verify` must name the right failing check, and `up`
// alone must bring the stack back to healthy.
func TestKillEachKindThenVerifyAndRecover(t *testing.T) {
	d := newDevstack(t)
	if out := d.up(); !strings.Contains(out, "verified healthy") {
		t.Fatalf("first up did not verify:\n%s", out)
	}
	cases := []struct{ process, check string }{
		{"postgres", "postgres.reachable"},
		{"redis", "redis.reachable"},
		{"ac-0", "ac.jwks"},
		{"gc-1", "gc.health"},
		{"mc-0", "mc.ready"},
		{"redis-exporter", "prometheus.targets"},
		{"postgres-exporter", "prometheus.targets"},
		{"prometheus", "prometheus.ready"},
		{"verifier", "prometheus.targets"},
	}
	for _, c := range cases {
		t.Run(c.process, func(t *testing.T) {
			pid := d.pid(c.process)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %s (pid %d): %v", c.process, pid, err)
			}
			out, err := d.runEnv([]string{"VERIFIER_DEADLINE=8s"}, "verify")
			if err == nil {
				t.Fatalf("verify passed with %s killed:\n%s", c.process, out)
			}
			failLine := ""
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "FAIL") && strings.Contains(l, c.check) {
					failLine = l
				}
			}
			if failLine == "" {
				t.Fatalf("verify with %s killed did not fail %s:\n%s", c.process, c.check, out)
			}
			// Issue 11 item 13: devstack says at once which process is down
			// and what its log last said, and the verifier's verdict comes
			// before the deadline instead of retrying what will not start.
			if !strings.Contains(out, "not running (make up starts them again):\n  "+c.process+" is not running") ||
				!strings.Contains(out, "last lines of ") {
				t.Errorf("verify does not report %s down with its last log lines:\n%s", c.process, out)
			}
			if !strings.Contains(out, "local.process-down") && !strings.Contains(out, "local mode: "+c.process+" is not running") {
				t.Errorf("the verifier was not told %s is down:\n%s", c.process, out)
			}
			if strings.Contains(out, "deadline reached with checks still failing") {
				t.Errorf("with %s down a check still waited out the deadline:\n%s", c.process, out)
			}
			if c.process == "redis" && !regexp.MustCompile(`BLOCKED\s+mc\.webtransport`).MatchString(out) {
				t.Errorf("with Redis down mc.webtransport must be blocked, not failed:\n%s", out)
			}
			if out := d.up(); !strings.Contains(out, "verified healthy") || !strings.Contains(out, c.process) {
				t.Fatalf("up after killing %s did not return to healthy:\n%s", c.process, out)
			}
		})
	}
}

func (d *devstack) pid(name string) int {
	d.t.Helper()
	if name == "postgres" {
		b, err := os.ReadFile(filepath.Join(d.stateDir, "postgres", "data", "postmaster.pid"))
		if err != nil {
			d.t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		return pid
	}
	pid, ok := d.layout().Running(name)
	if !ok {
		d.t.Fatalf("%s is not running", name)
	}
	return pid
}
