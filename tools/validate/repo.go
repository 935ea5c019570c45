package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot is the checkout's root: the directory two levels above this module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/darktower/devstack\n")) {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("no github.com/darktower/devstack go.mod above %s", wd)
		}
	}
}

// Path is a path inside the repository.
func Path(t testing.TB, elem ...string) string {
	return filepath.Join(append([]string{RepoRoot(t)}, elem...)...)
}

// Tool is bin/<name>; a missing tool is a failure, never a skip.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := Path(t, "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: run `make tools` (mk/tools.mk builds the pinned version)", p)
	}
	return p
}

// Run runs a tool in the repository root and returns its stdout; failure names the command and
// quotes its stderr.
func Run(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(t, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr is Run that returns the failure instead of failing.
func RunErr(t testing.TB, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(Tool(t, name), args...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("bin/%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
