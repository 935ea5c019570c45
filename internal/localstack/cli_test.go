package localstack_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/darktower/devstack/internal/localstack"
)

// TestMainUsage: devstack's command line, in process: the usage lists every
// subcommand from the one table, bad input exits 2 naming what was wrong,
// and the read-only subcommands on a directory with no stack write nothing.
func TestMainUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	env := map[string]string{"STATE_DIR": dir, "BIN_DIR": t.TempDir()}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := localstack.Main(context.Background(), args, localstack.IO{
			Stdout: &out, Stderr: &errOut,
			Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		})
		return code, out.String(), errOut.String()
	}
	cases := []struct {
		args   []string
		code   int
		stderr []string
	}{
		{nil, 2, []string{"usage: devstack", "up ", "down ", "status ", "verify ", "logs ", "clean "}},
		{[]string{"start"}, 2, []string{`unknown command "start"`, "usage: devstack"}},
		{[]string{"up", "down"}, 2, []string{"usage: devstack"}},
		{[]string{"status", "--port-base", "abc"}, 2, []string{`PORT_BASE: expected a port number, got "abc"`}},
		{[]string{"--no-such-flag", "status"}, 2, []string{"flag provided but not defined: -no-such-flag"}},
		{[]string{"verify"}, 2, []string{"nothing is running: make up"}},
	}
	for _, c := range cases {
		code, _, stderr := run(c.args...)
		if code != c.code {
			t.Errorf("devstack %q: exit %d, want %d; stderr:\n%s", c.args, code, c.code, stderr)
		}
		for _, want := range c.stderr {
			if !strings.Contains(stderr, want) {
				t.Errorf("devstack %q: stderr lacks %q:\n%s", c.args, want, stderr)
			}
		}
	}
	// down and clean with no stack say so and succeed.
	for _, cmd := range []string{"down", "clean"} {
		if code, out, stderr := run(cmd); code != 0 || !strings.Contains(out, "nothing to stop") {
			t.Errorf("devstack %s with no stack: exit %d, stdout %q, stderr %q", cmd, code, out, stderr)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a command with no stack created %s (err %v)", dir, err)
	}
}
