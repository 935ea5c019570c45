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
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/probe"
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
	if code, out, errs := run(t, nil, false, "lint", "--config", ex); code != 0 || !strings.Contains(out, "valid, 16 checks") {
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

// The configuration's timeouts keys are the checks: lint hands config the
// spec list, so every check id is accepted and a near miss refused.
func TestTimeoutsNameTheChecks(t *testing.T) {
	redis := "redis:\n  address: h:1\n  password: {env: P}\n"
	src := "version: 1\ntimeouts:\n"
	for _, id := range probe.IDs() {
		src += "  " + id + ": 2s\n"
	}
	if code, out, errs := run(t, nil, false, "lint", "--config", write(t, src+redis)); code != 0 || !strings.Contains(out, "valid, 3 checks") {
		t.Fatalf("lint with every check id in timeouts: %d %q %q", code, out, errs)
	}
	bad := write(t, "version: 1\ntimeouts:\n  redis.reachabel: 1s\n"+redis)
	if code, _, errs := run(t, nil, false, "lint", "--config", bad); code != 2 || !strings.Contains(errs, bad+":3: timeouts: unknown check id \"redis.reachabel\"") {
		t.Fatalf("lint with a misspelt timeouts key: %d %q", code, errs)
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
	if s.Failures != 1 || s.Skipped != 2 || s.Cases[0].Failure == nil || s.Cases[0].Failure.Type != string(classify.RedisWrongPassword) ||
		s.Cases[1].Skipped == nil || s.Cases[1].Skipped.Message != "blocked by redis.reachable" {
		t.Fatalf("junit content: %+v\n%s", s, out)
	}
	if strings.Contains(out, "wrong-password-123") {
		t.Fatal("junit contains the password")
	}
}

// Issue 11 item 11: a password in a URL's userinfo never reaches plan or
// run output, in any format, and neither does a ${...} value that landed in
// the wrong field.
func TestNoSecretInAnyOutput(t *testing.T) {
	dead := testsupport.FreePort(t)
	const promPW, acPW, acSecret = "prom-pass-4242", "ac-pass-4242", "client-secret-4242"
	cfg := write(t, fmt.Sprintf(`version: 1
deadline: 2s
backoff: {initial: 50ms, max: 200ms}
ac:
  urls: ["http://acuser:%s@127.0.0.1:%d"]
  client_id: verifier
  client_secret: {env: ACS}
prometheus:
  url: http://promuser:%s@127.0.0.1:%d
  jobs: [{name: ac-service}]
`, acPW, dead, promPW, dead))
	env := map[string]string{"ACS": acSecret}
	leaks := func(what, s string) {
		t.Helper()
		for _, sec := range []string{promPW, acPW, acSecret, "promuser:", "acuser:"} {
			if strings.Contains(s, sec) {
				t.Errorf("%s shows %q:\n%s", what, sec, s)
			}
		}
	}
	code, out, errs := run(t, env, false, "plan", "--config", cfg)
	if code != 0 || !strings.Contains(out, "REDACTED@127.0.0.1") {
		t.Fatalf("plan: exit %d, want the URLs with userinfo redacted\n%s%s", code, out, errs)
	}
	leaks("plan", out+errs)
	for _, format := range []string{"text", "json", "junit"} {
		code, out, errs := run(t, env, false, "run", "--config", cfg, "--output", format)
		if code != 1 && code != 3 {
			t.Fatalf("run --output %s: exit %d, want a failure\n%s%s", format, code, out, errs)
		}
		if !strings.Contains(out, "127.0.0.1") {
			t.Fatalf("run --output %s names no target:\n%s", format, out)
		}
		leaks("run --output "+format, out+errs)
	}

	// A secret expanded into a field that rejects it: the error names the
	// field and the reference, never the value.
	env = map[string]string{"REDIS_PASSWORD": "hunter2-but-longer"}
	for _, src := range []string{
		"version: 1\ndeadline: ${REDIS_PASSWORD}\n",
		"version: 1\nmode: ${REDIS_PASSWORD}\n",
		"version: 1\nconcurrency: ${REDIS_PASSWORD}\n",
		"version: 1\n${REDIS_PASSWORD}: 1\n",
		"version: 1\ngc:\n  grpc_addresses: [\"${REDIS_PASSWORD}\"]\n",
	} {
		code, out, errs := run(t, env, false, "lint", "--config", write(t, src))
		if code != 2 {
			t.Errorf("%q: exit %d, want 2:\n%s", src, code, errs)
		}
		if strings.Contains(out+errs, "hunter2") {
			t.Errorf("%q: the expanded secret is echoed:\n%s", src, errs)
		}
	}
}

// Issue 11 item 12: hostile configuration files end at load with exit 2.
func TestHostileConfigurationFiles(t *testing.T) {
	if code, _, errs := run(t, nil, false, "lint", "--config", "/dev/zero"); code != 2 || !strings.Contains(errs, "larger than") {
		t.Fatalf("/dev/zero: exit %d %q, want 2 saying it is too large", code, errs)
	}
	// Just under the size limit, 80k unknown keys: refused in one walk
	// before the YAML decoder's quadratic duplicate-key check (minutes).
	var b strings.Builder
	b.WriteString("version: 1\n")
	for i := 0; b.Len() < 1<<20-32; i++ {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	code, _, errs := run(t, nil, false, "lint", "--config", write(t, b.String()))
	if code != 2 || !strings.Contains(errs, "at most 512 are allowed") {
		t.Fatalf("80k unknown keys: exit %d, %.500s", code, errs)
	}
	// Up to the limit, every unknown key is reported by line, bounded.
	b.Reset()
	b.WriteString("version: 1\n")
	for i := range 500 {
		fmt.Fprintf(&b, "k%d: 1\n", i)
	}
	code, _, errs = run(t, nil, false, "lint", "--config", write(t, b.String()))
	if code != 2 || !strings.Contains(errs, `:2: unknown key "k0" in /`) || !strings.Contains(errs, "and 450 more unknown keys") {
		t.Fatalf("500 unknown keys: exit %d, %.800s", code, errs)
	}
	if n := strings.Count(errs, "\n"); n > 60 {
		t.Fatalf("500 unknown keys: %d lines of errors, want a bounded report", n)
	}
	// A Postgres URL the driver cannot parse never becomes reachable: exit
	// 2 at load, without echoing the secret, instead of exit 3 at the deadline.
	cfg := write(t, "version: 1\ndeadline: 30s\npostgres:\n  url: {env: DBURL}\n")
	env := map[string]string{"DBURL": "postgres://u:topsecret-pw@host:notaport/db"}
	code, out, errs := run(t, env, false, "run", "--config", cfg)
	if code != 2 || !strings.Contains(errs, "postgres.url") || strings.Contains(out+errs, "topsecret-pw") {
		t.Fatalf("bad postgres URL: exit %d, want 2 naming postgres.url without the secret\n%s%s", code, out, errs)
	}
}
