package localstack_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/testsupport"
)

var (
	configLine = regexp.MustCompile(`^config: ([A-Z][A-Z0-9_]*): `)
	envName    = regexp.MustCompile(`[A-Z][A-Z0-9]*_[A-Z0-9_]+`)
)

// requiredVars discovers, from the real binary, which variables it requires:
// start it with only what it asked for so far; each start that stops with
// exit 2 names one more missing variable. Values come from env, the local
// mode's environment; a variable local mode does not set fails the test.
func requiredVars(t *testing.T, bin string, env map[string]string) []string {
	t.Helper()
	given := map[string]string{}
	var required []string
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		for k, v := range given {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			return required // it got past configuration (ran, or failed later for other reasons)
		}
		m := configLine.FindStringSubmatch(stderr.String())
		if m == nil {
			t.Fatalf("%s exited 2 without a config line naming a variable: %q", bin, stderr.String())
		}
		name := m[1]
		if _, dup := given[name]; dup {
			// A value can depend on an optional setting the message names
			// (MC_ALLOW_LOOPBACK_ADVERTISE); give it if local mode sets it.
			added := false
			for _, other := range envName.FindAllString(stderr.String()[len(m[0]):], -1) {
				if v, ok := env[other]; ok && given[other] == "" {
					given[other], added = v, true
				}
			}
			if !added {
				t.Fatalf("%s rejects local mode's value of %s: %s", bin, name, stderr.String())
			}
			continue
		}
		v, ok := env[name]
		if !ok {
			t.Fatalf("%s requires %s, which local mode does not set", bin, name)
		}
		given[name] = v
		required = append(required, name)
	}
	t.Fatalf("%s kept asking for variables", bin)
	return nil
}

// TestLocalModeSetsEveryRequiredVariable compares what each binary requires
// with what local mode gives it; both use the manifests' names.
func TestLocalModeSetsEveryRequiredVariable(t *testing.T) {
	s, err := localstack.Open(t.TempDir(), localstack.DefaultPortBase, t.TempDir(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSecrets(); err != nil {
		t.Fatal(err)
	}
	topo := s.Topo
	cases := []struct {
		binary string
		env    map[string]string
		want   []string
	}{
		{"db-migrate", topo.MigrateEnv(), []string{"DATABASE_URL"}},
		{"ac-service", topo.ACEnv(0), []string{"DATABASE_URL", "AC_SIGNING_KEY", "AC_CLIENTS_FILE"}},
		{"global-controller", topo.GCEnv(0), []string{"DATABASE_URL", "AC_INTERNAL_URL", "AC_JWKS_URL", "GC_CLIENT_ID", "GC_CLIENT_SECRET", "GC_REGION"}},
		{"meeting-controller", topo.MCEnv(0), []string{"MC_REGION", "GC_GRPC_URL", "AC_INTERNAL_URL", "AC_JWKS_URL", "MC_CLIENT_ID", "MC_CLIENT_SECRET", "REDIS_URL", "MC_GRPC_ADVERTISE_ADDRESS", "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "MC_BINDING_TOKEN_SECRET"}},
	}
	// AC reads its clients file at start.
	if err := os.MkdirAll(filepath.Dir(topo.ClientsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := localstack.WriteClientsFile(topo.ClientsFile, topo.Secrets); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.binary, func(t *testing.T) {
			got := requiredVars(t, testsupport.Binary(t, c.binary), c.env)
			gotSet := map[string]bool{}
			for _, v := range got {
				gotSet[v] = true
			}
			for _, w := range c.want {
				if !gotSet[w] {
					t.Errorf("%s did not require %s (required: %v)", c.binary, w, got)
				}
			}
		})
	}
}
