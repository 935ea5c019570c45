package cli

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/darktower/devstack/internal/testsupport"
)

func run(t *testing.T, env map[string]string, tty bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{Stdout: &out, Stderr: &errb, TTY: tty,
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	return code, out.String(), errb.String()
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageAndLint(t *testing.T) {
	ex := "../config/examples/local.yaml"
	if code, out, errs := run(t, nil, false, "lint", "--config", ex); code != 0 || !strings.Contains(out, "valid, 14 checks") {
		t.Fatalf("lint example: %d %q %q", code, out, errs)
	}
	bad := write(t, "version: 1\nredis:\n  address: h:1\n  password: {env: P}\n  db: 3\n")
	if code, _, errs := run(t, nil, false, "lint", "--config", bad); code != 2 || !strings.Contains(errs, bad+":5: unknown key \"db\"") {
		t.Fatalf("lint unknown key: %d %q", code, errs)
	}
	if code, _, errs := run(t, nil, false, "run", "--config", ex); code != 2 || !strings.Contains(errs, "environment variable REDIS_PASSWORD is not set") {
		t.Fatalf("run without secrets: %d %q", code, errs)
	}
	for _, args := range [][]string{{"frobnicate"}, {"run", "--output", "xml", "--config", ex}, {"run", "--nope"}, {"plan", "--config", ex, "extra"}} {
		if code, _, _ := run(t, nil, false, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, out, _ := run(t, nil, false, "plan", "--config", ex)
	if code != 0 || !strings.Contains(out, "wave 4 (in parallel):") || !strings.Contains(out, "gc.registration          timeout 5s") {
		t.Fatalf("plan: %d\n%s", code, out)
	}
	if code, out, _ := run(t, nil, false, "schema"); code != 0 || !strings.Contains(out, `"$schema"`) {
		t.Fatalf("schema: %d", code)
	}
}

// TestOutputsAgainstRealRedis: a WRONGPASS in text (plain and terminal) and
// junit, with the blocked checks skipped.
func TestOutputsAgainstRealRedis(t *testing.T) {
	rd := testsupport.StartRedis(t)
	cfg := write(t, fmt.Sprintf("version: 1\ndeadline: 20s\nbackoff: {initial: 50ms, max: 200ms}\nredis:\n  address: %s\n  password: {env: RP}\n", rd.Addr()))
	env := map[string]string{"RP": "wrong-password-123"}

	code, out, _ := run(t, env, false, "run", "--config", cfg)
	if code != 1 || strings.Contains(out, "\033[") {
		t.Fatalf("plain text: exit %d, escapes present: %v\n%s", code, strings.Contains(out, "\033["), out)
	}
	for _, want := range []string{"FAIL    redis.reachable", "BLOCKED redis.auth-enforced", "blocked by redis.reachable",
		"what:     redis.reachable failed: " + rd.Addr() + ": WRONGPASS", "evidence:", "(2 attempts, the same definite answer twice)",
		"cause:    Redis refused the password from $RP", `next:     REDISCLI_AUTH="$RP" redis-cli -h 127.0.0.1 -p`, "0 passed, 1 failed, 2 blocked"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q\n%s", want, out)
		}
	}
	if _, tty, _ := run(t, env, true, "run", "--config", cfg); !strings.Contains(tty, "\033[31m") {
		t.Errorf("terminal output has no colour:\n%q", tty)
	}

	code, out, _ = run(t, env, false, "run", "--config", cfg, "--output", "junit")
	var doc struct {
		Suites []struct {
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Cases    []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil || code != 1 || len(doc.Suites) != 1 {
		t.Fatalf("junit: exit %d, %v\n%s", code, err, out)
	}
	s := doc.Suites[0]
	if s.Failures != 1 || s.Skipped != 2 || s.Cases[0].Failure == nil || s.Cases[0].Failure.Type != "redis.wrong-password" ||
		s.Cases[1].Skipped == nil || s.Cases[1].Skipped.Message != "blocked by redis.reachable" {
		t.Fatalf("junit content: %+v\n%s", s, out)
	}
	if strings.Contains(out, "wrong-password-123") {
		t.Fatal("junit contains the password")
	}
}
