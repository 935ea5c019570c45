package observability_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// promtool is Debian's (package prometheus, 2.42). Its absence fails the
// tests: the rule and configuration checks are the point of them.
const promtool = "/usr/bin/promtool"

func requirePromtool(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(promtool); err != nil {
		t.Fatalf("%s: %v (install Debian's prometheus package; .ci/run does)", promtool, err)
	}
}

// runTool runs a command and returns its combined output and error.
func runTool(dir, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Kubernetes objects are read through internal/manifest, typed, as every test
// that reads manifests does; loadDocs and its walker below are for the YAML
// that is no Kubernetes object: the Kustomizations, Prometheus's, Loki's and
// Grafana's configuration, rule files and their tests.

// loadObjects decodes the Kubernetes objects in a manifest file.
func loadObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifest.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// loadObject is the one Kubernetes object in a manifest file.
func loadObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	objs := loadObjects(t, path)
	if len(objs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", path, len(objs))
	}
	return objs[0]
}

// typed converts an object strictly into its k8s.io/api type.
func typed(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := manifest.Typed(o, into); err != nil {
		t.Fatal(err)
	}
}

// podVolumes lists the pod volumes of the workloads in a manifest file.
func podVolumes(t *testing.T, path string) []corev1.Volume {
	t.Helper()
	var out []corev1.Volume
	for _, o := range loadObjects(t, path) {
		w, _, err := manifest.WorkloadOf(o)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, w.Template.Spec.Volumes...)
	}
	return out
}

type obj = map[string]any

// loadDocs decodes every YAML document in path.
func loadDocs(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func loadDoc(t *testing.T, path string) obj {
	t.Helper()
	docs := loadDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", path, len(docs))
	}
	return docs[0]
}

// get walks maps by key; missing keys give nil.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func strs(v any, keys ...string) []string {
	var out []string
	for _, e := range list(v, keys...) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// globBase lists the base names of files matching pattern, sorted.
func globBase(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equalSets(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
