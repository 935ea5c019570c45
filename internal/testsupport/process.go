package testsupport

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/procs"
)

var (
	binMu   sync.Mutex
	binDir  string
	binDone = map[string]string{}
)

// Main runs the package's tests and removes the binaries Binary built.
// Use it from TestMain: func TestMain(m *testing.M) { testsupport.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	binMu.Lock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	binMu.Unlock()
	os.Exit(code)
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Binary builds ./cmd/<name> once per test process and returns its path.
func Binary(t testing.TB, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binDone[name]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "darktower-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	binDone[name] = out
	return out
}

// Process is one of our binaries running under a test.
type Process struct {
	Name string
	Path string
	Env  map[string]string

	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs Buffer
	done chan struct{}
	code int
}

// StartProcess runs bin with exactly env (plus PATH and HOME) and captures
// its output. It is killed when the test ends.
func StartProcess(t testing.TB, name, bin string, env map[string]string) *Process {
	t.Helper()
	p := &Process{Name: name, Path: bin, Env: env, t: t}
	p.Start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", p.Name, p.Logs())
		}
	})
	return p
}

// Start starts the process (again) with the same environment.
func (p *Process) Start() {
	p.t.Helper()
	cmd := exec.Command(p.Path)
	cmd.Env = procs.Environ(p.Env)
	cmd.Stdout, cmd.Stderr = &p.logs, &p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		p.mu.Lock()
		p.code = code
		p.mu.Unlock()
		close(done)
	}()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.code, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %v", p.Name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	p.Signal(syscall.SIGKILL)
	_, _ = p.Wait(10 * time.Second)
}

// Logs returns everything the process wrote to stdout and stderr.
func (p *Process) Logs() string {
	return p.logs.String()
}
