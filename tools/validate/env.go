package validate

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// SecretData is a rendered Secret's data (base64-decoded) merged with stringData, or nil when
// the Secret is not rendered.
func (m Manifests) SecretData(t testing.TB, ns, name string) map[string]string {
	t.Helper()
	o := m.Find("Secret", ns, name)
	if o == nil {
		return nil
	}
	var s corev1.Secret
	Typed(t, o, &s)
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// ConfigMapData is a rendered ConfigMap's data, or nil.
func (m Manifests) ConfigMapData(t testing.TB, ns, name string) map[string]string {
	t.Helper()
	o := m.Find("ConfigMap", ns, name)
	if o == nil {
		return nil
	}
	var c corev1.ConfigMap
	Typed(t, o, &c)
	out := map[string]string{}
	for k, v := range c.Data {
		out[k] = v
	}
	for k, v := range c.BinaryData {
		out[k] = base64.StdEncoding.EncodeToString(v)
	}
	return out
}

// FieldValues stands in for the downward API.
var FieldValues = map[string]string{
	"status.podIP":       "10.244.1.23",
	"metadata.name":      "pod-0",
	"metadata.namespace": "dark-tower",
	"spec.nodeName":      "dark-tower-control-plane",
	"status.hostIP":      "172.18.0.2",
}

// ResolveEnv is the environment the kubelet would give a container: envFrom, then env in order
// with $(VAR) references expanded, values from Secrets, ConfigMaps and the downward API. A
// reference to something not rendered is an error naming it.
func (m Manifests) ResolveEnv(t testing.TB, ns string, c corev1.Container) (map[string]string, []error) {
	t.Helper()
	env := map[string]string{}
	var errs []error
	for _, ef := range c.EnvFrom {
		var data map[string]string
		var what string
		switch {
		case ef.SecretRef != nil:
			what, data = "Secret "+ef.SecretRef.Name, m.SecretData(t, ns, ef.SecretRef.Name)
		case ef.ConfigMapRef != nil:
			what, data = "ConfigMap "+ef.ConfigMapRef.Name, m.ConfigMapData(t, ns, ef.ConfigMapRef.Name)
		}
		if data == nil {
			errs = append(errs, fmt.Errorf("container %s: envFrom %s/%s is not rendered", c.Name, ns, what))
			continue
		}
		for k, v := range data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expandKubelet(e.Value, env)
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			data := m.SecretData(t, ns, r.Name)
			v, ok := data[r.Key]
			if !ok {
				errs = append(errs, fmt.Errorf("container %s: env %s: Secret %s/%s key %q is not rendered", c.Name, e.Name, ns, r.Name, r.Key))
				continue
			}
			env[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			data := m.ConfigMapData(t, ns, r.Name)
			v, ok := data[r.Key]
			if !ok {
				errs = append(errs, fmt.Errorf("container %s: env %s: ConfigMap %s/%s key %q is not rendered", c.Name, e.Name, ns, r.Name, r.Key))
				continue
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v, ok := FieldValues[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				errs = append(errs, fmt.Errorf("container %s: env %s: unexpected fieldRef %s", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath))
			}
			env[e.Name] = v
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "1"
		}
	}
	return env, errs
}

var kubeletRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expandKubelet expands $(VAR) from variables defined earlier, as the kubelet does: an unknown
// reference stays as written, $$ is a literal $.
func expandKubelet(s string, env map[string]string) string {
	return kubeletRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		name := m[2 : len(m)-1]
		if v, ok := env[name]; ok {
			return v
		}
		return m
	})
}
