package observability_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/infra/observability"
	"github.com/darktower/devstack/internal/localstack"
)

const (
	promConfig = "prometheus/prometheus.yaml"
	rulesDir   = "prometheus/rules"
	runbooks   = "../../docs/runbooks.md"
)

// sdGroup is one file_sd target group.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// clusterConfigWithFileSD copies the cluster configuration into dir with
// each job's kubernetes_sd_configs replaced by a file_sd_configs reading
// groups[job]: Debian's Prometheus is built without Kubernetes discovery,
// but file_sd hands the same __meta_kubernetes_* labels to the unchanged
// relabel rules. The rules go to dir/rules, as in the Pod. interval, when
// set, replaces the global scrape and evaluation intervals.
func clusterConfigWithFileSD(t *testing.T, dir, interval string, groups map[string][]sdGroup) string {
	t.Helper()
	cfg := loadDoc(t, promConfig)
	for _, sc := range list(cfg, "scrape_configs") {
		job := str(sc, "job_name")
		m := sc.(obj)
		if _, ok := m["kubernetes_sd_configs"]; !ok {
			t.Fatalf("job %s has no kubernetes_sd_configs", job)
		}
		delete(m, "kubernetes_sd_configs")
		g := groups[job]
		if g == nil {
			g = []sdGroup{}
		}
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "sd-"+job+".json")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		m["file_sd_configs"] = []any{obj{"files": []any{file}, "refresh_interval": "1s"}}
	}
	if interval != "" {
		g := cfg["global"].(obj)
		g["scrape_interval"], g["evaluation_interval"] = interval, interval
		delete(g, "scrape_timeout")
	}
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range globBase(t, filepath.Join(rulesDir, "*.yaml")) {
		b, err := os.ReadFile(filepath.Join(rulesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rules", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrometheusConfig: one job per component, each discovering pods in
// dark-tower and keeping only its own component; promtool accepts the
// configuration and the rule files it names.
func TestPrometheusConfig(t *testing.T) {
	requirePromtool(t)
	cfg := loadDoc(t, promConfig)
	var jobs []string
	for _, sc := range list(cfg, "scrape_configs") {
		job := str(sc, "job_name")
		jobs = append(jobs, job)
		sd := list(sc, "kubernetes_sd_configs")
		if len(sd) != 1 || str(sd[0], "role") != "pod" || !equalSets(strs(sd[0], "namespaces", "names"), []string{"dark-tower"}) {
			t.Errorf("job %s: want one kubernetes_sd_configs with role pod in namespace dark-tower, got %v", job, sd)
		}
		var keepsComponent bool
		targets := map[string]bool{}
		for _, r := range list(sc, "relabel_configs") {
			src := strs(r, "source_labels")
			if str(r, "action") == "keep" && len(src) == 1 && src[0] == "__meta_kubernetes_pod_label_app_kubernetes_io_name" {
				keepsComponent = str(r, "regex") == job
			}
			if tl := str(r, "target_label"); tl != "" {
				targets[tl] = true
			}
		}
		if !keepsComponent {
			t.Errorf("job %s does not keep exactly the pods labelled app.kubernetes.io/name=%s", job, job)
		}
		for _, l := range []string{"namespace", "pod"} {
			if !targets[l] {
				t.Errorf("job %s does not relabel to %q", job, l)
			}
		}
	}
	if strings.Join(jobs, ",") != strings.Join(observability.Jobs, ",") {
		t.Errorf("jobs = %v, want %v", jobs, observability.Jobs)
	}
	if got := strs(cfg, "rule_files"); len(got) != 1 || got[0] != "rules/*.yaml" {
		t.Errorf("rule_files = %v, want [rules/*.yaml] (the Pod mounts them there)", got)
	}

	path := clusterConfigWithFileSD(t, t.TempDir(), "", nil)
	out, err := runTool(".", promtool, "check", "config", path)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	for _, f := range globBase(t, filepath.Join(rulesDir, "*.yaml")) {
		if !strings.Contains(out, f) {
			t.Errorf("promtool check config did not check rule file %s:\n%s", f, out)
		}
	}
}

// TestLocalModeLoadsTheRules: local mode's generated configuration (the
// lead's renderer) with the embedded rule files passes promtool, and local
// mode's job names are the cluster's.
func TestLocalModeLoadsTheRules(t *testing.T) {
	requirePromtool(t)
	local := []string{localstack.JobAC, localstack.JobGC, localstack.JobMC, localstack.JobRedis, localstack.JobPostgres, localstack.JobVerifier}
	if strings.Join(local, ",") != strings.Join(observability.Jobs, ",") {
		t.Fatalf("local mode jobs %v differ from the cluster's %v", local, observability.Jobs)
	}
	dir := t.TempDir()
	files, err := observability.WriteRules(filepath.Join(dir, "rules"))
	if err != nil {
		t.Fatal(err)
	}
	if !equalSets(baseNames(files), globBase(t, filepath.Join(rulesDir, "*.yaml"))) {
		t.Fatalf("embedded rules %v differ from %s/*.yaml", files, rulesDir)
	}
	jobs := map[string][]string{}
	for i, j := range observability.Jobs {
		jobs[j] = []string{fmt.Sprintf("127.0.0.1:%d", 20000+i)}
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(localstack.PrometheusConfig(jobs, files)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(dir, promtool, "check", "config", path)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check config (local mode): %v\n%s", err, out)
	}
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

// alertRule is one alerting rule with the file it is in.
type alertRule struct {
	file, name, expr string
	labels, annots   map[string]string
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var out []alertRule
	for _, f := range globBase(t, filepath.Join(rulesDir, "*.yaml")) {
		doc := loadDoc(t, filepath.Join(rulesDir, f))
		for _, g := range list(doc, "groups") {
			for _, r := range list(g, "rules") {
				a := alertRule{file: f, name: str(r, "alert"), expr: str(r, "expr"),
					labels: map[string]string{}, annots: map[string]string{}}
				if a.name == "" {
					t.Errorf("%s: a rule without alert name (recording rules belong elsewhere): %v", f, r)
					continue
				}
				for k, v := range get(r, "labels").(obj) {
					a.labels[k], _ = v.(string)
				}
				for k, v := range get(r, "annotations").(obj) {
					a.annots[k], _ = v.(string)
				}
				out = append(out, a)
			}
		}
	}
	return out
}

var headingRE = regexp.MustCompile(`(?m)^## ([a-z0-9-]+)\s*$`)

// TestAlertRules: promtool accepts the rules and their unit tests pass;
// every alert has a severity, a summary and a runbook_url whose anchor
// exists in docs/runbooks.md, and a unit test where it fires and one where
// it stays quiet.
func TestAlertRules(t *testing.T) {
	requirePromtool(t)
	ruleFiles := globBase(t, filepath.Join(rulesDir, "*.yaml"))
	testFiles := globBase(t, filepath.Join(rulesDir, "tests", "*.yaml"))
	if !equalSets(ruleFiles, testFiles) {
		t.Errorf("rule files %v and test files %v should pair up by name", ruleFiles, testFiles)
	}
	args := []string{"check", "rules"}
	for _, f := range ruleFiles {
		args = append(args, filepath.Join(rulesDir, f))
	}
	if out, err := runTool(".", promtool, args...); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	args = []string{"test", "rules"}
	for _, f := range testFiles {
		args = append(args, filepath.Join("tests", f))
	}
	if out, err := runTool(rulesDir, promtool, args...); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	rb, err := os.ReadFile(runbooks)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(string(rb), -1) {
		anchors[m[1]] = true
	}

	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range testFiles {
		doc := loadDoc(t, filepath.Join(rulesDir, "tests", f))
		if want := "../" + f; !equalSets(strs(doc, "rule_files"), []string{want}) {
			t.Errorf("tests/%s: rule_files = %v, want [%s]", f, strs(doc, "rule_files"), want)
		}
		for _, tc := range list(doc, "tests") {
			for _, at := range list(tc, "alert_rule_test") {
				name := str(at, "alertname")
				if len(list(at, "exp_alerts")) > 0 {
					fires[name] = true
				} else {
					quiet[name] = true
				}
			}
		}
	}

	seen := map[string]bool{}
	for _, a := range loadAlerts(t) {
		if seen[a.name] {
			t.Errorf("alert %s is defined twice", a.name)
		}
		seen[a.name] = true
		if s := a.labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", a.name, s)
		}
		if a.annots["summary"] == "" {
			t.Errorf("%s: no summary annotation", a.name)
		}
		want := "docs/runbooks.md#" + strings.ToLower(a.name)
		if a.annots["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", a.name, a.annots["runbook_url"], want)
		}
		if !anchors[strings.ToLower(a.name)] {
			t.Errorf("%s: docs/runbooks.md has no section \"## %s\"", a.name, strings.ToLower(a.name))
		}
		if !fires[a.name] {
			t.Errorf("%s: no promtool test where it fires", a.name)
		}
		if !quiet[a.name] {
			t.Errorf("%s: no promtool test where it stays quiet", a.name)
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("tests name alert %s, which no rule file defines", name)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alert rules found")
	}
}
