// Package observability holds what the Kind manifests and local mode share:
// the Prometheus job names and the alert rule files (prometheus/rules/*.yaml),
// embedded so that local mode can load the very files the cluster's
// ConfigMap is generated from. The manifests themselves are plain Kustomize
// (kustomization.yaml beside this file).
package observability

import (
	"embed"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// Jobs are the Prometheus job names, one per component, in both modes. The
// verifier's prometheus.targets check expects exactly these.
var Jobs = []string{"ac-service", "global-controller", "meeting-controller", "redis", "postgres", "verifier"}

//go:embed prometheus/rules/*.yaml
var rules embed.FS

// RuleFiles maps each rule file's base name to its contents.
func RuleFiles() (map[string][]byte, error) {
	names, err := fs.Glob(rules, "prometheus/rules/*.yaml")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := rules.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out[path.Base(n)] = b
	}
	return out, nil
}

// WriteRules writes the rule files into dir (created if needed) and returns
// their paths, sorted, for prometheus.yml's rule_files.
func WriteRules(dir string) ([]string, error) {
	files, err := RuleFiles()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}
