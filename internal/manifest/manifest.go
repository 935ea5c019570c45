// Package manifest is the one reading of Kubernetes manifests for the tests: rendering a
// Kustomize directory with the pinned kubectl, decoding YAML into unstructured objects,
// looking objects up and converting them strictly into k8s.io/api types, Secret and
// ConfigMap data, the workloads that run pods, the environment the kubelet would give a
// container and the files its Secret and ConfigMap volumes hold.
//
// It returns errors rather than failing a test, so that internal/infracheck,
// infra/observability and tools/validate (its own module) can all use it.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Set is a list of objects in the order they were rendered or read.
type Set struct {
	Source  string // what the objects came from (a Kustomize directory, "skaffold render"), for messages
	Objects []*unstructured.Unstructured
}

var (
	renderMu    sync.Mutex
	renderCache = map[[3]string][]byte{}
)

// Render runs `kubectl kustomize dir` in root once per process (kubectl being the pinned
// binary) and decodes its output. Each call decodes anew, so a caller may change the objects
// it gets without affecting the next one.
func Render(kubectl, root, dir string) (Set, error) {
	key := [3]string{kubectl, root, dir}
	// Held while kubectl runs: parallel tests rendering the same directory wait for the one run.
	renderMu.Lock()
	out, ok := renderCache[key]
	if !ok {
		cmd := exec.Command(kubectl, "kustomize", dir)
		cmd.Dir = root
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			renderMu.Unlock()
			return Set{}, fmt.Errorf("%s kustomize %s: %v\n%s", kubectl, dir, err, stderr.String())
		}
		out = stdout.Bytes()
		renderCache[key] = out
	}
	renderMu.Unlock()
	objs, err := Decode(out)
	if err != nil {
		return Set{}, fmt.Errorf("decode output of kubectl kustomize %s: %w", dir, err)
	}
	if len(objs) == 0 {
		return Set{}, fmt.Errorf("kubectl kustomize %s rendered nothing", dir)
	}
	return Set{Source: dir, Objects: objs}, nil
}

// Decode splits a multi-document YAML (or JSON) stream into objects, skipping empty documents.
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

// ReadFile decodes the objects of a plain manifest file.
func ReadFile(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// With returns a copy of s with objs appended; s itself is unchanged.
func (s Set) With(objs ...*unstructured.Unstructured) Set {
	return Set{Source: s.Source, Objects: append(append([]*unstructured.Unstructured{}, s.Objects...), objs...)}
}

// OfKind returns every object of a kind.
func (s Set) OfKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range s.Objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Find returns the object of kind/namespace/name, or nil.
func (s Set) Find(kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range s.Objects {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

// Typed converts an object strictly (an unknown field is an error) into a k8s.io/api type;
// the error names the object.
func Typed(o *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		return fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return nil
}
