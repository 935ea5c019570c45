package manifest

import (
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// WriteVolumes writes the Secret and ConfigMap volumes that container c of pod (in namespace)
// mounts under dir/mnt/<mount name>, each key (or only the listed items) as a file, and returns
// mountPath -> that directory, so a binary can be run locally with the files its manifest
// gives it. Other volume types are skipped.
func (s Set) WriteVolumes(namespace string, pod corev1.PodSpec, c corev1.Container, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			var kind, name string
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
			case v.ConfigMap != nil:
				kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
			default:
				continue
			}
			data, err := s.Data(kind, namespace, name)
			if err != nil {
				return nil, fmt.Errorf("container %s: volume %s: %w", c.Name, v.Name, err)
			}
			if data == nil {
				return nil, fmt.Errorf("container %s: volume %s: %s %s/%s is not rendered", c.Name, v.Name, kind, namespace, name)
			}
			local := filepath.Join(dir, "mnt", vm.Name)
			if err := os.MkdirAll(local, 0o700); err != nil {
				return nil, err
			}
			if len(items) == 0 {
				for k := range data {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				val, ok := data[it.Key]
				if !ok {
					return nil, fmt.Errorf("container %s: volume %s: %s %s/%s key %q is not rendered", c.Name, v.Name, kind, namespace, name, it.Key)
				}
				p := filepath.Join(local, it.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					return nil, err
				}
				if err := os.WriteFile(p, []byte(val), 0o600); err != nil {
					return nil, err
				}
			}
			out[vm.MountPath] = local
		}
	}
	return out, nil
}
