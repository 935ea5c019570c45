// Package e2eutil runs the verifier binary against real servers and judges
// its JSON report: the shared part of the verifier's end-to-end tests.
package e2eutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/report"
)

// Config is a verifier configuration built in a test.
type Config map[string]any

// Ref is a credential reference to an environment variable.
func Ref(env string) map[string]string { return map[string]string{"env": env} }

// Base is the common part: fast backoff, short per-attempt timeouts.
func Base(deadline time.Duration) Config {
	return Config{
		"version":  1,
		"deadline": deadline.String(),
		"timeouts": map[string]string{"default": "2s"},
		"backoff":  map[string]string{"initial": "100ms", "max": "500ms"},
	}
}

// With returns a copy with section set (nil removes it).
func (c Config) With(section string, v any) Config {
	out := Config{}
	for k, x := range c {
		out[k] = x
	}
	if v == nil {
		delete(out, section)
	} else {
		out[section] = v
	}
	return out
}

// Result is one run of the verifier binary.
type Result struct {
	Exit    int
	Doc     report.Document
	Stdout  string
	Stderr  string
	Elapsed time.Duration
}

// Check returns the report's entry for id.
func (r Result) Check(id string) report.Check {
	for _, c := range r.Doc.Checks {
		if c.ID == id {
			return c
		}
	}
	return report.Check{ID: id, Status: "absent"}
}

// Run writes cfg to a file and runs `verifier <args> --config file` with
// exactly env (plus PATH and HOME). With --output json in args the report is
// parsed into Doc.
func Run(t testing.TB, cfg Config, env map[string]string, args ...string) Result {
	t.Helper()
	bin := testsupport.Binary(t, "verifier")
	b, err := yaml.Marshal(map[string]any(cfg))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "verifier.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--config", path)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String(), Elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	for i, a := range args {
		if a == "--output" && i+1 < len(args) && args[i+1] == "json" {
			if err := json.Unmarshal(out.Bytes(), &res.Doc); err != nil {
				t.Fatalf("verifier --output json wrote no JSON document: %v\nstdout:\n%s\nstderr:\n%s", err, res.Stdout, res.Stderr)
			}
		}
	}
	return res
}

// Expect asserts that exactly the checks in failing failed, each with its
// error class, that every other check passed or was blocked by one of them,
// that every failure states evidence, cause and next command, and the exit
// code. The checks in want must all be present in the report.
func Expect(t testing.TB, r Result, exit int, failing map[string]classify.Class, want ...string) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("verifier exit %d after %v\nstdout:\n%s\nstderr:\n%s", r.Exit, r.Elapsed, r.Stdout, r.Stderr)
		}
	}()
	if r.Exit != exit {
		t.Errorf("exit code %d, want %d", r.Exit, exit)
	}
	if r.Doc.SchemaVersion != report.SchemaVersion {
		t.Errorf("schema_version %d", r.Doc.SchemaVersion)
	}
	for _, id := range want {
		if r.Check(id).Status == "absent" {
			t.Errorf("check %s missing from the report", id)
		}
	}
	for _, c := range r.Doc.Checks {
		class, shouldFail := failing[c.ID]
		switch {
		case shouldFail:
			if c.Status != "fail" {
				t.Errorf("%s: status %s, want fail (%s)", c.ID, c.Status, class)
				continue
			}
			if c.Class == nil || c.Class.ID != class {
				t.Errorf("%s: class %+v, want %s (error: %s)", c.ID, c.Class, class, c.Error)
				continue
			}
			if c.Error == "" || c.Class.Cause == "" || c.Class.Next == "" || c.Attempts < 1 {
				t.Errorf("%s: failure lacks what/cause/next/attempts: %+v", c.ID, c)
			}
		case c.Status == "blocked":
			if _, ok := failing[c.BlockedBy]; !ok {
				t.Errorf("%s: blocked by %q, which was not meant to fail", c.ID, c.BlockedBy)
			}
		case c.Status != "pass":
			t.Errorf("%s: status %s (%s: %s), want pass", c.ID, c.Status, classID(c), c.Error)
		}
	}
	for id := range failing {
		if r.Check(id).Status == "absent" {
			t.Errorf("check %s meant to fail is not in the report", id)
		}
	}
}

func classID(c report.Check) classify.Class {
	if c.Class == nil {
		return ""
	}
	return c.Class.ID
}

// NoSecrets asserts that none of the secret values appears in any output.
func NoSecrets(t testing.TB, r Result, secrets map[string]string) {
	t.Helper()
	for what, v := range secrets {
		if v != "" && (strings.Contains(r.Stdout, v) || strings.Contains(r.Stderr, v)) {
			t.Errorf("the verifier's output contains the %s", what)
		}
	}
}

// Statuses summarises a report for logs: "id=status" sorted.
func Statuses(r Result) string {
	var s []string
	for _, c := range r.Doc.Checks {
		s = append(s, c.ID+"="+string(c.Status))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// Tmpfs mounts a tmpfs of size bytes over dir (the tests run as root) and
// unmounts it when the test ends, after calling each of before (stop what
// holds files on it). A filesystem that small fills up for real.
func Tmpfs(t testing.TB, dir string, size int64, before ...func()) {
	t.Helper()
	opts := "size=" + strconv.FormatInt(size, 10) + ",mode=0755"
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s (the disk-full tests need root): %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		for _, f := range before {
			f()
		}
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
}

// Fill writes zeros to a file in dir until its filesystem has no room left.
func Fill(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// The last partial blocks: tmpfs accepts writes down to one page.
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}
