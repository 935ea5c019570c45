package observability_test

import (
	"bytes"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/darktower/devstack/infra/observability"
	"github.com/darktower/devstack/internal/localstack"
)

// verifierJobs returns the Prometheus jobs a verifier configuration expects.
func verifierJobs(t *testing.T, what string, doc []byte) []string {
	t.Helper()
	var cfg struct {
		Prometheus struct {
			Jobs []struct {
				Name string `yaml:"name"`
			} `yaml:"jobs"`
		} `yaml:"prometheus"`
	}
	if err := yaml.Unmarshal(doc, &cfg); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var jobs []string
	for _, j := range cfg.Prometheus.Jobs {
		jobs = append(jobs, j.Name)
	}
	slices.Sort(jobs)
	return jobs
}

// TestVerifierExpectsExactlyTheJobsInBothModes: the cluster's verifier
// ConfigMap and local mode's generated configuration expect the same jobs as
// Prometheus scrapes, no more and no fewer.
func TestVerifierExpectsExactlyTheJobsInBothModes(t *testing.T) {
	want := slices.Sorted(slices.Values(observability.Jobs))

	var cm corev1.ConfigMap
	typed(t, loadObject(t, "../services/verifier/configmap.yaml"), &cm)
	var clusterCfg string
	for k, s := range cm.Data {
		if bytes.Contains([]byte(s), []byte("prometheus:")) {
			clusterCfg = s
			t.Logf("cluster verifier configuration: ConfigMap key %s", k)
		}
	}
	if clusterCfg == "" {
		t.Fatal("infra/services/verifier/configmap.yaml holds no verifier configuration with a prometheus section")
	}
	if got := verifierJobs(t, "cluster", []byte(clusterCfg)); !slices.Equal(got, want) {
		t.Errorf("cluster verifier expects jobs %v, Prometheus scrapes %v", got, want)
	}

	s, err := localstack.Open(t.TempDir(), localstack.DefaultPortBase, t.TempDir(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := verifierJobs(t, "local", []byte(s.VerifierConfig(s.Topo))); !slices.Equal(got, want) {
		t.Errorf("local verifier expects jobs %v, Prometheus scrapes %v", got, want)
	}
	local := slices.Sorted(func(yield func(string) bool) {
		for job := range s.ScrapeTargets(s.Topo, true) {
			if !yield(job) {
				return
			}
		}
	})
	if !slices.Equal(local, want) {
		t.Errorf("local Prometheus scrapes jobs %v, the cluster's %v", local, want)
	}
}
