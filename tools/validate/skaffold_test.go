package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/darktower/devstack/internal/manifest"
)

// skaffoldEnv puts bin/ first on PATH so Skaffold's kustomize renderer runs the pinned kubectl,
// and gives the remote profile's render hook its cluster network.
func skaffoldEnv(t *testing.T) []string {
	return append([]string{"PATH=" + Path(t, "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
		"SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_INTERACTIVE=false"}, remoteNetworkEnv...)
}

type skaffoldConfig struct {
	Build struct {
		TagPolicy map[string]any `json:"tagPolicy"`
		Artifacts []struct {
			Image   string `json:"image"`
			Context string `json:"context"`
			Docker  *struct {
				Dockerfile string            `json:"dockerfile"`
				BuildArgs  map[string]string `json:"buildArgs"`
			} `json:"docker"`
			Ko *struct {
				Main      string `json:"main"`
				FromImage string `json:"fromImage"`
			} `json:"ko"`
		} `json:"artifacts"`
	} `json:"build"`
	Profiles []struct {
		Name string `json:"name"`
	} `json:"profiles"`
	PortForward []struct {
		ResourceType string `json:"resourceType"`
		ResourceName string `json:"resourceName"`
		Namespace    string `json:"namespace"`
	} `json:"portForward"`
}

// readSkaffold is skaffold.yaml as Skaffold itself resolves it (`diagnose --yaml-only`, which
// fails on any key its schema lacks): one document per config, for the default pipeline or
// a profile.
func readSkaffold(t *testing.T, profile string) []skaffoldConfig {
	t.Helper()
	args := []string{"diagnose", "--yaml-only"}
	if profile != "" {
		args = append(args, "--profile", profile)
	}
	return decodeSkaffold(t, "skaffold "+strings.Join(args, " "), Run(t, skaffoldEnv(t), "skaffold", args...))
}

func decodeSkaffold(t *testing.T, what string, b []byte) []skaffoldConfig {
	t.Helper()
	docs, err := manifest.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var out []skaffoldConfig
	for _, d := range docs {
		raw, _ := json.Marshal(d.Object)
		var c skaffoldConfig
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no config", what)
	}
	return out
}

// profileNames lists the profiles of every config in skaffold.yaml.
func profileNames(t *testing.T) []string {
	raw, err := os.ReadFile(Path(t, "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var names []string
	for _, c := range decodeSkaffold(t, "skaffold.yaml", raw) {
		for _, p := range c.Profiles {
			if !seen[p.Name] {
				seen[p.Name] = true
				names = append(names, p.Name)
			}
		}
	}
	return names
}

// TestSkaffold: Skaffold parses skaffold.yaml and renders the default pipeline and every
// profile offline; every artifact is one of the images, built from its Dockerfile with the
// repository as context, and appears in what is rendered (SPEC section 9, mistake 1); every
// image the manifests name under dark-tower/ is an artifact; nothing is tagged latest.
func TestSkaffold(t *testing.T) {
	profiles := append([]string{""}, profileNames(t)...)
	if !contains(profiles, "operator") {
		t.Errorf("skaffold.yaml has no `operator` profile (profiles: %v)", profiles[1:])
	}
	for _, p := range profiles {
		name := p
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { checkSkaffoldProfile(t, p) })
	}
}

func checkSkaffoldProfile(t *testing.T, profile string) {
	arts := map[string]bool{}
	var forwards []string
	for _, cfg := range readSkaffold(t, profile) {
		if _, ok := cfg.Build.TagPolicy["sha256"]; ok {
			t.Errorf("build.tagPolicy sha256 tags images latest; use the default gitCommit or inputDigest")
		}
		checkArtifacts(t, cfg, arts)
		for _, pf := range cfg.PortForward {
			if !strings.EqualFold(pf.ResourceType, "service") {
				t.Errorf("port forward to %s %s/%s: forward Services, whose pods may change", pf.ResourceType, pf.Namespace, pf.ResourceName)
			}
			forwards = append(forwards, objKey("Service", pf.Namespace, pf.ResourceName))
		}
	}
	for _, bin := range imageBinaries {
		if !arts["dark-tower/"+bin] {
			t.Errorf("no artifact builds dark-tower/%s", bin)
		}
	}
	have := renderProfile(t, profile, arts)
	// A forward to a Service the profile leaves out (Grafana on the node)
	// only makes Skaffold warn on every start.
	for _, k := range forwards {
		if !have[k] {
			t.Errorf("port forward to %s, which the profile does not deploy", k)
		}
	}
}

// checkArtifacts: each artifact is one of the images, built from the repository (Docker: its
// Dockerfile; ko: its ./cmd/<binary>).
func checkArtifacts(t *testing.T, cfg skaffoldConfig, arts map[string]bool) {
	t.Helper()
	root := RepoRoot(t)
	for _, a := range cfg.Build.Artifacts {
		arts[a.Image] = true
		bin := strings.TrimPrefix(a.Image, "dark-tower/")
		if !contains(imageBinaries, bin) || !strings.HasPrefix(a.Image, "dark-tower/") {
			t.Errorf("artifact %q is not one of dark-tower/{%s}", a.Image, strings.Join(imageBinaries, ","))
		}
		if a.Context != "." && a.Context != "" && a.Context != root {
			t.Errorf("artifact %s: context %q, want the repository root", a.Image, a.Context)
		}
		switch {
		case a.Ko != nil:
			if a.Ko.Main != "./cmd/"+bin {
				t.Errorf("artifact %s: ko main %q, want ./cmd/%s", a.Image, a.Ko.Main, bin)
			}
			if runtime := templateArg(t, "RUNTIME_IMAGE"); a.Ko.FromImage != runtime {
				t.Errorf("artifact %s: ko fromImage %q; want the Dockerfile's RUNTIME_IMAGE %s", a.Image, a.Ko.FromImage, runtime)
			}
		case a.Docker == nil || a.Docker.Dockerfile != "infra/docker/"+bin+".Dockerfile":
			t.Errorf("artifact %s: want docker.dockerfile infra/docker/%s.Dockerfile, got %+v", a.Image, bin, a.Docker)
		case a.Docker.BuildArgs["BINARY"] != bin:
			t.Errorf("artifact %s: buildArgs BINARY %q, want %s (the one Dockerfile builds ./cmd/$BINARY)", a.Image, a.Docker.BuildArgs["BINARY"], bin)
		}
	}
}

// renderProfile: what Skaffold renders offline deploys every artifact, names only artifacts
// under dark-tower/, pins every other image, and contains the Kind overlay (and, with the
// operator profile, the ServiceMonitors). It returns the rendered objects' keys (objKey).
func renderProfile(t *testing.T, profile string, arts map[string]bool) map[string]bool {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rendered.yaml")
	args := []string{"render", "--offline", "--digest-source=none", "--output", file}
	if profile != "" {
		args = append(args, "--profile", profile)
	}
	Run(t, skaffoldEnv(t), "skaffold", args...)
	objs, err := manifest.ReadFile(file)
	if err != nil {
		t.Fatalf("skaffold %s: output: %v", strings.Join(args, " "), err)
	}
	rendered := manifest.Set{Source: "skaffold render", Objects: objs}
	used := map[string]bool{}
	for _, w := range Workloads(t, rendered) {
		for _, c := range append(append([]corev1.Container{}, w.Template.Spec.InitContainers...), w.Template.Spec.Containers...) {
			name, tag := manifest.SplitImage(c.Image)
			used[name] = true
			switch {
			case strings.HasPrefix(name, "dark-tower/") && !arts[name]:
				t.Errorf("%s container %s: image %s is built by no artifact", w.Ref(), c.Name, c.Image)
			case strings.HasPrefix(name, "dark-tower/") && tag != "":
				t.Errorf("%s container %s: image %s carries a tag; manifests name the artifact, Skaffold tags it", w.Ref(), c.Name, c.Image)
			case !strings.HasPrefix(name, "dark-tower/") && (tag == "" || strings.HasPrefix(tag, ":latest")):
				t.Errorf("%s container %s: image %s is not pinned (no tag or latest)", w.Ref(), c.Name, c.Image)
			}
		}
	}
	var missing []string
	for a := range arts {
		if !used[a] {
			missing = append(missing, a)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("artifacts built but deployed by no rendered workload: %v", missing)
	}
	// The default pipeline deploys the Kind overlay, the operator profile adds the ServiceMonitors,
	// the remote profile deploys the base with the cluster's network.
	want := Render(t, KindOverlay).Objects
	if profile == "remote" { // a real cluster: production sizing, no NodePorts
		want = Render(t, RemoteOverlay).Objects
	}
	if profile == "operator" {
		want = append(want, Render(t, ServiceMonitorsDir).Objects...)
	}
	if profile == "node" {
		want = Render(t, NodeOverlay).Objects
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[objKey(o.GetKind(), o.GetNamespace(), o.GetName())] = true
		// What Skaffold deploys it deletes (make delete, the end of skaffold dev): the namespaces,
		// with the volumes in them, come from the datastores before-hook instead.
		if o.GetKind() == "Namespace" {
			t.Errorf("skaffold render renders Namespace %s; kind/namespaces.sh creates the namespaces", o.GetName())
		}
	}
	for _, o := range want {
		if k := objKey(o.GetKind(), o.GetNamespace(), o.GetName()); !have[k] {
			t.Errorf("skaffold render does not render %s", k)
		}
	}
	return have
}

func objKey(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// templateArg is the default of ARG name in infra/docker/Dockerfile, the one place for
// the base images' digests.
func templateArg(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, "infra", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ARG "+name+"="); ok {
			return v
		}
	}
	t.Fatalf("infra/docker/Dockerfile has no ARG %s=...", name)
	return ""
}
