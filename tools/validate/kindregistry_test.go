package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/darktower/devstack/internal/manifest"
)

// makeVar is a variable of the Makefile as make evaluates it, with
// mk/kind.mk's defaults (no PROFILE, nothing overridden).
func makeVar(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.Command("make", "-s", "--no-print-directory", "--eval", "print-var-%: ; @echo '$($*)'", "print-var-"+name, "PROFILE=")
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("make print-var-%s: %v\n%s", name, err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// TestSkaffoldPushesToKindRegistry: no pipeline of skaffold.yaml loads
// images into Kind: every build pushes (Skaffold `kind load`s only unpushed
// images), no hook runs `kind load`, and with the default repo make gives
// Skaffold for Kind, the Kind pipelines render our images under the local
// registry.
func TestSkaffoldPushesToKindRegistry(t *testing.T) {
	registry := makeVar(t, "KIND_REGISTRY")
	if flags := makeVar(t, "CLUSTER_FLAGS"); !strings.Contains(" "+flags+" ", " --default-repo "+registry+" ") {
		t.Errorf("make passes Skaffold %q for Kind, want --default-repo %s", flags, registry)
	}
	for _, p := range append([]string{""}, profileNames(t)...) {
		args := []string{"diagnose", "--yaml-only"}
		if p != "" {
			args = append(args, "--profile", p)
		}
		out := Run(t, skaffoldEnv(t), "skaffold", args...)
		if bytes.Contains(out, []byte("kind load")) || bytes.Contains(out, []byte("- load")) {
			t.Errorf("profile %q: the resolved config runs `kind load`", p)
		}
		docs, err := manifest.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			arts, _, _ := unstructured.NestedSlice(d.Object, "build", "artifacts")
			push, set, _ := unstructured.NestedBool(d.Object, "build", "local", "push")
			if len(arts) > 0 && (!set || !push) {
				t.Errorf("profile %q, config %s: build.local.push is not true: Skaffold would `kind load` its images", p, d.GetName())
			}
		}
	}
	// The pipelines that deploy to Kind (remote has its own registry, node its own).
	for _, p := range []string{"", "operator", "ko"} {
		file := filepath.Join(t.TempDir(), "rendered.yaml")
		args := []string{"render", "--offline", "--digest-source=tag", "--default-repo", registry, "--output", file}
		if p != "" {
			args = append(args, "--profile", p)
		}
		Run(t, skaffoldEnv(t), "skaffold", args...)
		objs, err := manifest.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ours := 0
		for _, w := range Workloads(t, manifest.Set{Source: "skaffold render", Objects: objs}) {
			for _, c := range append(append([]corev1.Container{}, w.Template.Spec.InitContainers...), w.Template.Spec.Containers...) {
				if !strings.Contains(c.Image, "dark-tower") {
					continue
				}
				ours++
				if !strings.HasPrefix(c.Image, registry+"/") {
					t.Errorf("profile %q: %s container %s: image %s is not under the local registry %s", p, w.Ref(), c.Name, c.Image, registry)
				}
			}
		}
		if ours == 0 {
			t.Errorf("profile %q: skaffold render shows none of our images", p)
		}
	}
}
