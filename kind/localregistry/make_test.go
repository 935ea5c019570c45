package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/darktower/devstack/internal/testsupport"
)

// makeEnv is the test's environment without the variables of a make that
// runs `go test` (its job server and flags belong to it) and without the
// settings mk/kind.mk reads from the environment, so its defaults apply.
func makeEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PROFILE", "REGISTRY", "KIND_DIR",
			"KIND_REGISTRY_NAME", "KIND_REGISTRY_PORT", "KIND_REGISTRY_IMAGE", "KIND_REGISTRY_VOLUME",
			"KIND_MIRROR_NAME", "KIND_MIRROR_VOLUME", "KIND_MIRROR_UPSTREAM":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runMake runs make in the repository root with vars on its command line
// and returns what it printed; a failure quotes it.
func runMake(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = testsupport.ModuleRoot(t)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// makeVar is a variable as make evaluates it: mk/kind.mk's defaults, or
// with vars (NAME=value) on make's command line.
func makeVar(t *testing.T, name string, vars ...string) string {
	t.Helper()
	args := append([]string{"-s", "--eval", "print-var-%: ; @echo '$($*)'", "print-var-" + name}, vars...)
	return strings.TrimSpace(runMake(t, makeEnv(), args...))
}
