package validate

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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

// InCluster is what a cluster holds once Skaffold deployed dir: the namespaces its hook created,
// then dir.
func InCluster(t testing.TB, dir string) Manifests {
	t.Helper()
	m := Render(t, dir)
	m.Objects = append(Render(t, NamespacesDir).Objects, m.Objects...)
	return m
}

// VerifierJob is applied outside Kustomize (make verify-cluster, skaffold verify).
const VerifierJob = "infra/services/verifier/job.yaml"

// WithFiles returns m plus the objects of plain manifest files (repository paths).
func (m Manifests) WithFiles(t testing.TB, paths ...string) Manifests {
	t.Helper()
	out := Manifests{Dir: m.Dir, Objects: append([]*unstructured.Unstructured{}, m.Objects...)}
	for _, p := range paths {
		b, err := os.ReadFile(Path(t, p))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out.Objects = append(out.Objects, objs...)
	}
	return out
}

// Manifests are the objects of one `kubectl kustomize` run, in output order.
type Manifests struct {
	Dir     string
	Objects []*unstructured.Unstructured
}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]byte{}
)

// Render runs the pinned `bin/kubectl kustomize dir` (once per process) and decodes the output.
func Render(t testing.TB, dir string) Manifests {
	t.Helper()
	renderMu.Lock()
	out, ok := renderCache[dir]
	if !ok {
		var err error
		out, err = RunErr(t, nil, "kubectl", "kustomize", dir)
		if err != nil {
			renderMu.Unlock()
			t.Fatal(err)
		}
		renderCache[dir] = out
	}
	renderMu.Unlock()
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("decode output of kubectl kustomize %s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("kubectl kustomize %s rendered nothing", dir)
	}
	return Manifests{Dir: dir, Objects: objs}
}

// Decode splits a multi-document YAML stream into objects.
func Decode(b []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// OfKind returns every object of a kind.
func (m Manifests) OfKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.Objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Find returns the object of kind/namespace/name, or nil.
func (m Manifests) Find(kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range m.Objects {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

// Typed converts an object strictly (unknown fields are an error) into a typed value.
func Typed(t testing.TB, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
}

// Workload is an object that runs pods.
type Workload struct {
	Kind, Namespace, Name string
	Labels                map[string]string
	Selector              map[string]string // matchLabels; nil for a Job
	Template              corev1.PodTemplateSpec
	Replicas              int32
	ClaimTemplates        []string // a StatefulSet's volumeClaimTemplates
}

// Ref names the workload in messages.
func (w Workload) Ref() string { return w.Kind + " " + w.Namespace + "/" + w.Name }

// Workloads returns every Deployment, StatefulSet, DaemonSet and Job with its pod template.
func (m Manifests) Workloads(t testing.TB) []Workload {
	t.Helper()
	var out []Workload
	for _, o := range m.Objects {
		w := Workload{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Labels: o.GetLabels(), Replicas: 1}
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			Typed(t, o, &d)
			w.Template, w.Selector = d.Spec.Template, matchLabels(t, w, d.Spec.Selector)
			if d.Spec.Replicas != nil {
				w.Replicas = *d.Spec.Replicas
			}
		case "StatefulSet":
			var s appsv1.StatefulSet
			Typed(t, o, &s)
			w.Template, w.Selector = s.Spec.Template, matchLabels(t, w, s.Spec.Selector)
			for _, c := range s.Spec.VolumeClaimTemplates {
				w.ClaimTemplates = append(w.ClaimTemplates, c.Name)
			}
			if s.Spec.Replicas != nil {
				w.Replicas = *s.Spec.Replicas
			}
		case "DaemonSet":
			var d appsv1.DaemonSet
			Typed(t, o, &d)
			w.Template, w.Selector = d.Spec.Template, matchLabels(t, w, d.Spec.Selector)
		case "Job":
			var j batchv1.Job
			Typed(t, o, &j)
			w.Template = j.Spec.Template
		default:
			continue
		}
		out = append(out, w)
	}
	return out
}

func matchLabels(t testing.TB, w Workload, sel *metav1.LabelSelector) map[string]string {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 || len(sel.MatchExpressions) > 0 {
		t.Errorf("%s: selector must be plain matchLabels (app.kubernetes.io/name and part-of), got %v", w.Ref(), sel)
		return nil
	}
	return sel.MatchLabels
}

func metav1LabelSelectorAsSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}
