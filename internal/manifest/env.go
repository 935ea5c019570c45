package manifest

import (
	"errors"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
)

// FieldValues stand in for the downward API (fieldRef) when resolving a container's
// environment.
var FieldValues = map[string]string{
	"status.podIP":       "10.244.1.23",
	"metadata.name":      "pod-0",
	"metadata.namespace": "dark-tower",
	"spec.nodeName":      "dark-tower-control-plane",
	"status.hostIP":      "172.18.0.2",
}

// KubeletRef matches what the kubelet expands in env values, command and args: $$ and
// $(VAR).
var KubeletRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// Expand expands $(VAR) from env as the kubelet does: an unknown reference stays as written,
// $$ is a literal $.
func Expand(s string, env map[string]string) string {
	return KubeletRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// ResolveEnv is the environment the kubelet would give container c of a pod in namespace: its
// envFrom first, then env in order with $(VAR) expanded from what is defined before it, values
// from s's Secrets and ConfigMaps and from FieldValues, "1" for a resourceFieldRef. What cannot
// be resolved (a Secret, ConfigMap or key not in s, an unknown fieldRef) is left out and named
// in the error, one line each; the rest is resolved all the same.
func (s Set) ResolveEnv(namespace string, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	var errs []error
	for _, ef := range c.EnvFrom {
		kind, name := "", ""
		switch {
		case ef.SecretRef != nil:
			kind, name = "Secret", ef.SecretRef.Name
		case ef.ConfigMapRef != nil:
			kind, name = "ConfigMap", ef.ConfigMapRef.Name
		default:
			errs = append(errs, fmt.Errorf("container %s: envFrom names neither a Secret nor a ConfigMap", c.Name))
			continue
		}
		data, err := s.Data(kind, namespace, name)
		if err == nil && data == nil {
			err = fmt.Errorf("%s %s/%s is not rendered", kind, namespace, name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: envFrom: %w", c.Name, err))
			continue
		}
		for k, v := range data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = Expand(e.Value, env)
		case e.ValueFrom.SecretKeyRef != nil, e.ValueFrom.ConfigMapKeyRef != nil:
			kind, name, key := "Secret", "", ""
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				name, key = r.Name, r.Key
			} else {
				kind, name, key = "ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key
			}
			data, err := s.Data(kind, namespace, name)
			v, ok := data[key]
			if err == nil && !ok {
				err = fmt.Errorf("%s %s/%s key %q is not rendered", kind, namespace, name, key)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err))
				continue
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v, ok := FieldValues[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				errs = append(errs, fmt.Errorf("container %s: env %s: unexpected fieldRef %s", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath))
				continue
			}
			env[e.Name] = v
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "1"
		}
	}
	return env, errors.Join(errs...)
}
