package manifest

import (
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Data is what a pod sees of a Secret (data base64-decoded, merged with stringData) or a
// ConfigMap (data, binaryData as base64): kind is "Secret" or "ConfigMap". It is nil, with no
// error, when s holds no such object.
func (s Set) Data(kind, namespace, name string) (map[string]string, error) {
	if kind != "Secret" && kind != "ConfigMap" {
		return nil, fmt.Errorf("%s %s/%s: only a Secret or a ConfigMap holds data", kind, namespace, name)
	}
	o := s.Find(kind, namespace, name)
	if o == nil {
		return nil, nil
	}
	out := map[string]string{}
	if kind == "Secret" {
		var sec corev1.Secret
		if err := Typed(o, &sec); err != nil {
			return nil, err
		}
		for k, v := range sec.Data {
			out[k] = string(v)
		}
		for k, v := range sec.StringData {
			out[k] = v
		}
		return out, nil
	}
	var cm corev1.ConfigMap
	if err := Typed(o, &cm); err != nil {
		return nil, err
	}
	for k, v := range cm.Data {
		out[k] = v
	}
	for k, v := range cm.BinaryData {
		out[k] = base64.StdEncoding.EncodeToString(v)
	}
	return out, nil
}
