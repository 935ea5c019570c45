package infracheck

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// binaries are the images the manifests run (infra contract) = the commands under cmd/.
var binaries = []string{"ac-service", "global-controller", "meeting-controller", "db-migrate", "verifier"}

// Lines naming a missing or bad setting: internal/config's and the verifier configuration's.
var (
	configErr   = regexp.MustCompile(`config: ([A-Z][A-Z0-9_]*): (.*)`)
	verifierErr = regexp.MustCompile(`environment variable ([A-Z][A-Z0-9_]*) is not set`)
)

// startWindow is how long a binary gets to refuse its configuration (exit 2) before it is
// taken to have accepted it and moved on to connecting.
const startWindow = 3 * time.Second

type prepared struct {
	bin  string
	path string // built once per test process
	args []string
	env  map[string]string // everything the manifest gives, paths rewritten to the test's files
}

// prepare resolves a workload's environment and arguments and writes its mounted Secrets and
// ConfigMaps under a temporary directory, rewriting mount paths wherever they appear.
func prepare(t *testing.T, m manifest.Set, w workload, bin string, addrs func(string) string) prepared {
	t.Helper()
	dir := t.TempDir()
	mounts, err := m.WriteVolumes(w.Namespace, w.Template.Spec, w.c, dir)
	if err != nil {
		t.Fatalf("%s: %v", w.Ref(), err)
	}
	if addrs == nil {
		addrs = func(s string) string { return s }
	}
	rewrite := func(s string) string {
		s = addrs(s)
		paths := make([]string, 0, len(mounts))
		for p := range mounts {
			paths = append(paths, p)
		}
		sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
		for _, p := range paths {
			s = strings.ReplaceAll(s, p, mounts[p])
		}
		return s
	}
	// Mounted files that name other mounted files (the verifier's configuration does).
	for _, local := range mounts {
		_ = filepath.WalkDir(local, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, []byte(rewrite(string(b))), 0o600)
		})
	}
	env, err := m.ResolveEnv(w.Namespace, w.c)
	if err != nil {
		t.Fatalf("%s: %v", w.Ref(), err)
	}
	for k, v := range env {
		env[k] = rewrite(v)
	}
	var args []string
	if len(w.c.Command) > 0 {
		t.Errorf("%s: container command %v overrides the image's entrypoint", w.Ref(), w.c.Command)
	}
	for _, a := range w.c.Args {
		args = append(args, rewrite(a))
	}
	return prepared{bin: bin, path: testsupport.Binary(t, bin), args: args, env: env}
}

// runBriefly runs the binary with exactly env and reports its exit code, or -1 when it was
// still running after startWindow (then it is killed).
func runBriefly(t *testing.T, p prepared, env map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startWindow)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, p.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, out.String()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("run %s: %v", p.bin, err)
	}
	return 0, out.String()
}

// TestManifestsSetEveryRequiredVariable derives each binary's required variables by running
// the real binary from an empty environment, adding the variable its one-line refusal names
// (with the manifest's value) until it stops refusing, and fails when the binary asks for a
// variable the manifest does not set or refuses a value the manifest gives. Then the binary
// gets the manifest's whole environment and must accept it (optional settings too).
func TestManifestsSetEveryRequiredVariable(t *testing.T) {
	m := render(t)
	ours := ourWorkloads(t, m)
	for _, bin := range binaries {
		t.Run(bin, func(t *testing.T) {
			t.Parallel() // mostly waiting out startWindow
			w, ok := ours[bin]
			if !ok {
				t.Fatalf("no rendered workload runs the image dark-tower/%s", bin)
			}
			p := prepare(t, m, w, bin, nil)
			env := map[string]string{}
			var required []string
			for range 40 {
				code, out := runBriefly(t, p, env)
				if code != 2 {
					break
				}
				name := ""
				for _, re := range []*regexp.Regexp{configErr, verifierErr} {
					for _, sm := range re.FindAllStringSubmatch(out, -1) {
						if _, set := env[sm[1]]; !set && name == "" {
							name = sm[1]
						}
					}
				}
				if name == "" {
					t.Fatalf("%s with the manifest's values %v refuses its configuration:\n%s", bin, keys(env), firstLines(out, 10))
				}
				v, ok := p.env[name]
				if !ok {
					t.Fatalf("%s requires %s, which %s does not set:\n%s", bin, name, w.Ref(), firstLines(out, 5))
				}
				env[name] = v
				required = append(required, name)
			}
			// The contract gives every binary required settings: none observed means the
			// refusal was never seen, not that there is nothing to check.
			if len(required) == 0 {
				t.Fatalf("%s started from an empty environment without refusing it", bin)
			}
			t.Logf("%s requires %v", bin, required)
			if code, out := runBriefly(t, p, p.env); code == 2 {
				t.Errorf("%s refuses the manifest's full environment:\n%s", bin, firstLines(out, 10))
			}
		})
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
