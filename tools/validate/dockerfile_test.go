package validate

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Binaries with an image (infra contract): infra/docker/Dockerfile with BINARY=<binary>, built
// through infra/docker/<binary>.Dockerfile, builds ./cmd/<binary>.
var imageBinaries = []string{"ac-service", "global-controller", "meeting-controller", "db-migrate", "verifier"}

var (
	digestPinned = regexp.MustCompile(`^[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}$`)
	golangImage  = regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?golang:(\d+)\.(\d+)\.(\d+)[^@]*@`)
	goDirective  = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`)
	nonrootUser  = regexp.MustCompile(`^65532(:65532)?$`)
)

// TestDockerfiles parses every Dockerfile with BuildKit's own parser and build checks, and
// checks what the cluster relies on: bases pinned by digest, the Go toolchain pinned at the
// module's Go version, a final distroless nonroot stage whose USER is numeric 65532 (runAsNonRoot
// cannot verify a user name), the binary built from ./cmd/$BINARY, one for each image.
func TestDockerfiles(t *testing.T) {
	gomod, err := os.ReadFile(Path(t, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gv := goDirective.FindStringSubmatch(string(gomod))
	if gv == nil {
		t.Fatal("go.mod has no go directive")
	}
	for _, bin := range imageBinaries {
		if _, err := os.Stat(Path(t, "cmd", bin)); err != nil {
			t.Errorf("image %s: no ./cmd/%s to build: %v", bin, bin, err)
		}
	}
	checkDockerfile(t, gv)
}

// buildsBinary: the go build of ./cmd/$BINARY, the build argument every image sets.
var buildsBinary = regexp.MustCompile(`go build .*\./cmd/\$\{?BINARY\}?(\s|$)`)

func checkDockerfile(t *testing.T, gv []string) {
	path := "infra/docker/Dockerfile"
	f, err := os.Open(Path(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: BuildKit parser: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: build check %s: %s", path, line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stage(s); want a Go build stage and a distroless runtime stage", path, len(stages))
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}
	names := map[string]bool{}
	sawGo, builds := false, false
	for i, st := range stages {
		base := expand(st.BaseName)
		if !names[strings.ToLower(base)] && base != "scratch" {
			if !digestPinned.MatchString(base) {
				t.Errorf("%s: stage %d FROM %s is not pinned as name:tag@sha256:<digest>", path, i, base)
			}
			if m := golangImage.FindStringSubmatch(base); m != nil {
				sawGo = true
				if m[1] != gv[1] || m[2] != gv[2] || (gv[3] != "" && atoi(m[3]) < atoi(gv[3])) {
					t.Errorf("%s: Go %s.%s.%s builds a module that says go %s.%s.%s", path, m[1], m[2], m[3], gv[1], gv[2], gv[3])
				}
			}
		}
		if st.Name != "" {
			names[strings.ToLower(st.Name)] = true
		}
		for _, c := range st.Commands {
			if r, ok := c.(*instructions.RunCommand); ok {
				if buildsBinary.MatchString(strings.Join(r.CmdLine, " ")) {
					builds = true
				}
			}
		}
	}
	if !sawGo {
		t.Errorf("%s: no stage builds FROM golang:<major>.<minor>.<patch>@sha256:...; the Go version is not pinned", path)
	}
	if !builds {
		t.Errorf("%s: no RUN `go build ... ./cmd/${BINARY}`", path)
	}
	final := stages[len(stages)-1]
	fbase := expand(final.BaseName)
	if !strings.HasPrefix(fbase, "gcr.io/distroless/") || !strings.Contains(fbase, ":nonroot") {
		t.Errorf("%s: final stage FROM %s; want gcr.io/distroless/<image>:nonroot@sha256:...", path, fbase)
	}
	user, entry := "", false
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = expand(c.User)
		case *instructions.EntrypointCommand:
			entry = true
			if c.PrependShell {
				t.Errorf("%s: ENTRYPOINT in shell form; distroless has no shell, use the exec (JSON) form", path)
			}
		}
	}
	if !nonrootUser.MatchString(user) {
		t.Errorf("%s: final stage USER %q; want numeric 65532 (distroless nonroot) so runAsNonRoot can verify it", path, user)
	}
	if !entry {
		t.Errorf("%s: final stage has no ENTRYPOINT", path)
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscanf(s, "%d", &n)
	return n
}

// TestDockerfilesCurrent: each image's infra/docker/<binary>.Dockerfile is a link to the one
// Dockerfile (`make dockerfiles`), so the build and the base images' digests are in one place.
func TestDockerfilesCurrent(t *testing.T) {
	for _, bin := range imageBinaries {
		path := "infra/docker/" + bin + ".Dockerfile"
		target, err := os.Readlink(Path(t, path))
		if err != nil || target != "Dockerfile" {
			t.Errorf("%s: want a symlink to Dockerfile (run `make dockerfiles`), got %q, %v", path, target, err)
		}
	}
}

// TestDockerignoreCurrent: each image's <binary>.Dockerfile.dockerignore is what infra/docker/dockerignore.sh
// makes of its binary's imports now; a stale one would leave a new package out of the build (or
// rebuild the image for changes it does not contain).
func TestDockerignoreCurrent(t *testing.T) {
	for _, bin := range imageBinaries {
		cmd := exec.Command(Path(t, "infra", "docker", "dockerignore.sh"), bin)
		cmd.Stderr = os.Stderr
		want, err := cmd.Output()
		if err != nil {
			t.Fatalf("infra/docker/dockerignore.sh %s: %v", bin, err)
		}
		path := "infra/docker/" + bin + ".Dockerfile.dockerignore"
		got, err := os.ReadFile(Path(t, path))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale: run `make dockerfiles`; want:\n%s", path, want)
		}
	}
}
