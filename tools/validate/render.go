package validate

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/darktower/devstack/internal/manifest"
)

// Kustomizations rendered by the tests: what Skaffold deploys by default, and the
// ServiceMonitors its operator profile adds.
const (
	KindOverlay        = "infra/overlays/kind"
	ServiceMonitorsDir = "infra/servicemonitors"
	RemoteOverlay      = "infra/overlays/remote"
	// NamespacesDir is applied by Skaffold's datastores before-hook (kind/namespaces.sh), outside
	// what Skaffold deploys and so deletes.
	NamespacesDir = "infra/namespaces"
)

// VerifierJob is applied outside Kustomize (make verify-cluster, skaffold verify).
const VerifierJob = "infra/services/verifier/job.yaml"

// The manifests are read through internal/manifest, shared with internal/infracheck and
// infra/observability; what follows only turns its errors into test failures.

// Render runs the pinned `bin/kubectl kustomize dir` (once per process) and decodes the output.
func Render(t testing.TB, dir string) manifest.Set {
	t.Helper()
	m, err := manifest.Render(Tool(t, "kubectl"), RepoRoot(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// InCluster is what a cluster holds once Skaffold deployed dir: the namespaces its hook created,
// then dir.
func InCluster(t testing.TB, dir string) manifest.Set {
	t.Helper()
	m := Render(t, dir)
	m.Objects = append(Render(t, NamespacesDir).Objects, m.Objects...)
	return m
}

// WithFiles returns m plus the objects of plain manifest files (repository paths).
func WithFiles(t testing.TB, m manifest.Set, paths ...string) manifest.Set {
	t.Helper()
	for _, p := range paths {
		objs, err := manifest.ReadFile(Path(t, p))
		if err != nil {
			t.Fatal(err)
		}
		m = m.With(objs...)
	}
	return m
}

// Typed converts an object strictly (unknown fields are an error) into a typed value.
func Typed(t testing.TB, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := manifest.Typed(o, into); err != nil {
		t.Fatal(err)
	}
}

// Workloads returns every Deployment, StatefulSet, DaemonSet and Job with its pod template; a
// controller whose selector is not plain matchLabels is an error.
func Workloads(t testing.TB, m manifest.Set) []manifest.Workload {
	t.Helper()
	ws, err := m.Workloads()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Kind != "Job" && w.Selector == nil {
			t.Errorf("%s: selector must be plain matchLabels (app.kubernetes.io/name and part-of), got %v", w.Ref(), w.LabelSelector)
		}
	}
	return ws
}

// Data is a rendered Secret's data (base64-decoded, merged with stringData) or ConfigMap's
// data, by kind; nil when it is not rendered.
func Data(t testing.TB, m manifest.Set, kind, ns, name string) map[string]string {
	t.Helper()
	d, err := m.Data(kind, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
