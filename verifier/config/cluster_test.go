package config

import (
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The in-cluster configuration (the verifier ConfigMap) reaches every
// service through its Service DNS name and builds the cluster checks.
func TestClusterConfigMapUsesServiceNames(t *testing.T) {
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, "../../infra/services/verifier/configmap.yaml", &cm)
	src, ok := cm.Data["verifier.yaml"]
	if !ok {
		t.Fatal("configmap.yaml has no verifier.yaml key")
	}
	cfg, err := Parse("configmap.yaml#verifier.yaml", []byte(src), Options{Lookup: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != "cluster" {
		t.Fatalf("mode %q, want cluster", cfg.Mode)
	}
	// DATABASE_URL comes from the postgres-credentials Secret.
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	readYAML(t, "../../infra/services/postgres/secret.yaml", &secret)
	if cfg.Postgres.URL.Env != "DATABASE_URL" {
		t.Fatalf("postgres.url is %s, want {env: DATABASE_URL} from postgres-credentials", cfg.Postgres.URL.Ref())
	}
	pg, err := url.Parse(secret.StringData["DATABASE_URL"])
	if err != nil {
		t.Fatal("postgres-credentials DATABASE_URL:", err)
	}
	targets := map[string]string{"redis.address": cfg.Redis.Address, "postgres.url": pg.Host, "prometheus.url": cfg.Prometheus.URL}
	for i, u := range cfg.AC.URLs {
		targets["ac.urls["+strconv.Itoa(i)+"]"] = u
	}
	for i, a := range cfg.GC.GRPCAddresses {
		targets["gc.grpc_addresses["+strconv.Itoa(i)+"]"] = a
	}
	for what, tg := range targets {
		host := tg
		if u, err := url.Parse(tg); err == nil && u.Host != "" {
			host = u.Host
		}
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			t.Errorf("%s %q: %v", what, tg, err)
			continue
		}
		parts := strings.Split(h, ".")
		if len(parts) != 2 || (parts[1] != "dark-tower" && parts[1] != "dark-tower-observability") {
			t.Errorf("%s %q: want a Service DNS name <service>.<namespace>", what, tg)
		}
	}
	if cfg.MC.HealthPort == 0 || len(cfg.MC.HealthURLs) > 0 {
		t.Errorf("mc: want health_port (each replica's registered pod IP), got %+v", cfg.MC)
	}

	k := cfg.Kubernetes
	if k == nil || k.Kubeconfig != "" || k.MigrationJob != "db-migrate" || k.NetworkPolicy == nil {
		t.Fatalf("kubernetes section: %+v", k)
	}
	for _, ns := range []string{"dark-tower", "dark-tower-observability"} {
		if w := k.Workloads[ns]; len(w.Deployments)+len(w.StatefulSets) == 0 {
			t.Errorf("kubernetes.workloads lists nothing in %s", ns)
		}
	}
	deny := map[int]string{}
	for _, d := range k.NetworkPolicy.Deny {
		deny[d.Port] = d.Container
	}
	if deny[9121] != "redis-exporter" || deny[9187] != "postgres-exporter" {
		t.Errorf("network_policy.deny %v: want the exporters 9121 and 9187 (SPEC section 7: Prometheus only)", k.NetworkPolicy.Deny)
	}
	if len(k.NetworkPolicy.Allow) == 0 || k.NetworkPolicy.Allow[0].Port != 6379 {
		t.Errorf("network_policy.allow %v: want Redis 6379", k.NetworkPolicy.Allow)
	}
}

func TestKubernetesSemantics(t *testing.T) {
	np := "  network_policy:\n    allow: [{pods: a=b, container: c, port: 1}]\n    deny: [{pods: a=b, container: d, port: 2}]\n"
	cases := map[string]string{
		"version: 1\nkubernetes:\n  migration_job: db-migrate\n":                            "need 'mode: cluster'",
		"version: 1\nmode: cluster\nkubernetes: {}\n":                                       "set workloads, migration_job or network_policy",
		"version: 1\nmode: cluster\nkubernetes:\n  kubeconfig: /k\n" + np:                   "runs only inside the cluster",
		"version: 1\nmode: cluster\nkubernetes:\n  network_policy:\n    deny: []\n":         "at least one allow port",
		"version: 1\nmode: cluster\nkubernetes:\n  migration_job: Bad_Name\n":               "/kubernetes/migration_job",
		"version: 1\nmode: cluster\nkubernetes:\n  workloads:\n    x: {deploymnets: [a]}\n": "unknown key \"deploymnets\"",
		"version: 1\nmode: cluster\ntimeouts:\n  kubernetes.workload: 1s\n":                 "unknown check id",
	}
	for src, want := range cases {
		_, err := Parse("v.yaml", []byte(src), Options{Lookup: env(nil), CheckIDs: []string{"kubernetes.workloads"}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
	src := "version: 1\nmode: cluster\nkubernetes:\n  kubeconfig: /nonexistent/kubeconfig\n  migration_job: db-migrate\n"
	cfg, err := Parse("v.yaml", []byte(src), Options{Lookup: env(nil)})
	if err != nil || cfg.Kubernetes.Namespace != "dark-tower" {
		t.Fatalf("lint: %v, namespace %q (want the default dark-tower)", err, cfg.Kubernetes.Namespace)
	}
	_, err = Parse("v.yaml", []byte(src), Options{Lookup: env(nil), ResolveSecrets: true})
	if err == nil || !strings.Contains(err.Error(), "v.yaml:4: kubernetes.kubeconfig: cannot read /nonexistent/kubeconfig") {
		t.Fatalf("run: err = %v", err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
