package infracheck

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/testsupport"
)

// The subset of the Kubernetes API these tests read.
type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Selector any `yaml:"selector"` // a Service's labels, a workload's LabelSelector
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string    `yaml:"secretName"`
			Items      []keyPath `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name  string    `yaml:"name"`
			Items []keyPath `yaml:"items"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type keyPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			FieldRef        *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		Prefix       string `yaml:"prefix"`
		SecretRef    *name  `yaml:"secretRef"`
		ConfigMapRef *name  `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
}

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type name struct {
	Name string `yaml:"name"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// portNumber resolves a probe's port (a name or a number) against the container's ports.
func (c container) portNumber(p any) (int, bool) {
	switch v := p.(type) {
	case int:
		return v, true
	case string:
		for _, cp := range c.Ports {
			if cp.Name == v {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

type manifests []object

// render runs the pinned `bin/kubectl kustomize infra/overlays/kind` in the repository.
func render(t *testing.T) manifests {
	t.Helper()
	root := testsupport.ModuleRoot(t)
	kubectl := filepath.Join(root, "bin", "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("%s missing: run `make %s` (pinned in mk/tools.mk)", kubectl, kubectl)
	}
	cmd := exec.Command(kubectl, "kustomize", "infra/overlays/kind")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bin/kubectl kustomize infra/overlays/kind: %v\n%s", err, stderr.String())
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	var m manifests
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return m
			}
			t.Fatalf("decode rendered manifests: %v", err)
		}
		if o.Kind != "" {
			m = append(m, o)
		}
	}
}

func (m manifests) find(kind, ns, n string) *object {
	for i := range m {
		if m[i].Kind == kind && m[i].Metadata.Namespace == ns && m[i].Metadata.Name == n {
			return &m[i]
		}
	}
	return nil
}

// data is a Secret's (decoded) or ConfigMap's data, nil when not rendered.
func (m manifests) data(t *testing.T, kind, ns, n string) map[string]string {
	t.Helper()
	o := m.find(kind, ns, n)
	if o == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range o.Data {
		if kind == "Secret" {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("Secret %s/%s key %s: %v", ns, n, k, err)
			}
			v = string(b)
		}
		out[k] = v
	}
	for k, v := range o.StringData {
		out[k] = v
	}
	return out
}

// workload is one of our binaries' pods as rendered.
type workload struct {
	kind, ns, name string
	obj            *object
	c              container // the container running the image dark-tower/<binary>
}

// ours returns the workloads whose main container runs one of our images.
func (m manifests) ours(t *testing.T) map[string]workload {
	t.Helper()
	out := map[string]workload{}
	for i := range m {
		o := &m[i]
		switch o.Kind {
		case "Deployment", "StatefulSet", "Job", "DaemonSet":
		default:
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			bin, ok := strings.CutPrefix(imageName(c.Image), "dark-tower/")
			if !ok {
				continue
			}
			if _, dup := out[bin]; dup {
				t.Errorf("two workloads run dark-tower/%s; the checks take the first", bin)
				continue
			}
			out[bin] = workload{kind: o.Kind, ns: o.Metadata.Namespace, name: o.Metadata.Name, obj: o, c: c}
		}
	}
	return out
}

func imageName(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// podIP stands in for status.podIP; rewrite() turns <podIP>:<containerPort> into a loopback
// address.
const podIP = "10.244.1.23"

var fieldValues = map[string]string{"status.podIP": podIP, "metadata.name": "pod-0", "metadata.namespace": "dark-tower"}

var kubeletRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// env is what the kubelet gives the container: envFrom, then env in order with $(VAR)
// expanded, values from Secrets, ConfigMaps and the downward API. A reference to something
// not rendered fails the test.
func (m manifests) env(t *testing.T, w workload) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range w.c.EnvFrom {
		var d map[string]string
		switch {
		case ef.SecretRef != nil:
			d = m.data(t, "Secret", w.ns, ef.SecretRef.Name)
		case ef.ConfigMapRef != nil:
			d = m.data(t, "ConfigMap", w.ns, ef.ConfigMapRef.Name)
		}
		if d == nil {
			t.Fatalf("%s %s: envFrom names something not rendered: %+v", w.kind, w.name, ef)
		}
		for k, v := range d {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range w.c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = kubeletRef.ReplaceAllStringFunc(e.Value, func(s string) string {
				if s == "$$" {
					return "$"
				}
				if v, ok := env[s[2:len(s)-1]]; ok {
					return v
				}
				return s
			})
		case e.ValueFrom.SecretKeyRef != nil, e.ValueFrom.ConfigMapKeyRef != nil:
			kind, ref := "Secret", e.ValueFrom.SecretKeyRef
			if ref == nil {
				kind, ref = "ConfigMap", e.ValueFrom.ConfigMapKeyRef
			}
			v, ok := m.data(t, kind, w.ns, ref.Name)[ref.Key]
			if !ok {
				t.Fatalf("%s %s: env %s: %s %s key %s is not rendered", w.kind, w.name, e.Name, kind, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v, ok := fieldValues[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("%s %s: env %s: unexpected fieldRef %s", w.kind, w.name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		}
	}
	return env
}

// mounts writes the container's Secret and ConfigMap volumes under dir and returns
// mountPath -> local directory.
func (m manifests) mounts(t *testing.T, w workload, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, vm := range w.c.VolumeMounts {
		for _, v := range w.obj.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			var d map[string]string
			var items []keyPath
			switch {
			case v.Secret != nil:
				d, items = m.data(t, "Secret", w.ns, v.Secret.SecretName), v.Secret.Items
			case v.ConfigMap != nil:
				d, items = m.data(t, "ConfigMap", w.ns, v.ConfigMap.Name), v.ConfigMap.Items
			default:
				continue
			}
			if d == nil {
				t.Fatalf("%s %s: volume %s names something not rendered", w.kind, w.name, v.Name)
			}
			local := filepath.Join(dir, "mnt", vm.Name)
			if err := os.MkdirAll(local, 0o700); err != nil {
				t.Fatal(err)
			}
			if len(items) == 0 {
				for k := range d {
					items = append(items, keyPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				val, ok := d[it.Key]
				if !ok {
					t.Fatalf("%s %s: volume %s: key %s is not rendered", w.kind, w.name, v.Name, it.Key)
				}
				p := filepath.Join(local, it.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(val), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out[vm.MountPath] = local
		}
	}
	return out
}
