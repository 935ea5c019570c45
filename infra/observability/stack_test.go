package observability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/darktower/devstack/infra/observability"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/testsupport"
)

// synthetic names Prometheus itself creates; no binary exports them.
var synthetic = map[string]bool{"up": true, "ALERTS": true}

// grafanaVars replaces Grafana's built-in variables so that a dashboard
// query can be sent to Prometheus as it is.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "5m")

// TestStackExportsEveryReferencedMetric runs one AC, GC and MC, Redis and
// PostgreSQL with their exporters (configured from the sidecar patches),
// the verifier in serve mode and Debian's Prometheus with the cluster's
// scrape configuration (Kubernetes discovery swapped for file discovery fed
// the labels Kubernetes would give these pods) and the alert rules. It then
// proves:
//   - the relabelling keeps exactly one target per job, on the metrics port,
//     labelled with namespace, pod and container, and every target is up;
//   - the verifier's prometheus.targets check passes with exactly
//     observability.Jobs;
//   - every rule loads and evaluates without error, and no alert is pending
//     or firing on this healthy stack (verifier checks aside);
//   - every dashboard query is valid PromQL to a real Prometheus;
//   - every metric a rule or dashboard names is exported by a real /metrics.
func TestStackExportsEveryReferencedMetric(t *testing.T) {
	start := time.Now()
	if _, err := os.Stat(testsupport.PrometheusBinary()); err != nil {
		t.Fatalf("prometheus: %v (Debian package prometheus)", err)
	}
	st := testsupport.StartControlPlane(t, testsupport.ControlPlaneOptions{Tuning: &tuning})
	pg, rd := st.Postgres, st.Redis
	secrets := manifest.Set{Source: "the test's servers", Objects: []*unstructured.Unstructured{
		secret("redis-credentials", "REDIS_PASSWORD", rd.Password),
		secret("postgres-credentials", "POSTGRES_PASSWORD", pg.Password),
	}}
	redisExp := startExporterFromPatch(t, "exporters/redis-exporter.yaml", "/usr/bin/prometheus-redis-exporter",
		secrets, strings.NewReplacer("127.0.0.1:6379", rd.Addr()))
	pgExp := startExporterFromPatch(t, "exporters/postgres-exporter.yaml", "/usr/bin/prometheus-postgres-exporter",
		secrets, strings.NewReplacer("127.0.0.1:5432", pg.Addr()))

	driveTraffic(t, st)

	// Prometheus with the cluster configuration, fed the targets Kubernetes
	// discovery would report for these pods (and some it must drop).
	verifierPort := testsupport.FreePort(t)
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	free := func() string { return addr(testsupport.FreePort(t)) }
	groups := map[string][]sdGroup{
		"ac-service": {
			pod("ac-service", "ac-service-5d8f-a", "ac-service", "http", "Running", addr(st.Topo.AC[0])),
			pod("ac-service", "ac-service-5d8f-b", "ac-service", "http", "Pending", free()),
		},
		"global-controller": {
			pod("global-controller", "global-controller-6c9-a", "global-controller", "http", "Running", addr(st.Topo.GC[0].HTTP)),
			pod("global-controller", "global-controller-6c9-a", "global-controller", "grpc", "Running", addr(st.Topo.GC[0].GRPC)),
		},
		"meeting-controller": {
			pod("meeting-controller", "meeting-controller-7b-a", "meeting-controller", "grpc", "Running", addr(st.Topo.MC[0].GRPC)),
			pod("meeting-controller", "meeting-controller-7b-a", "meeting-controller", "health", "Running", addr(st.Topo.MC[0].Health)),
			pod("meeting-controller", "meeting-controller-7b-a", "meeting-controller", "webtransport", "Running", addr(st.Topo.MC[0].WebTransport)),
		},
		"redis": {
			pod("redis", "redis-0", "redis", "redis", "Running", rd.Addr()),
			pod("redis", "redis-0", "redis-exporter", "metrics", "Running", redisExp.Addr),
		},
		"postgres": {
			pod("postgres", "postgres-0", "postgres", "postgres", "Running", pg.Addr()),
			pod("postgres", "postgres-0", "postgres-exporter", "metrics", "Running", pgExp.Addr),
			// another component's pod is never this job's target
			pod("db-migrate", "db-migrate-x", "db-migrate", "metrics", "Running", free()),
		},
		"verifier": {
			pod("verifier", "verifier-84-a", "verifier", "http", "Running", addr(verifierPort)),
			pod("verifier", "verifier-run-q", "verifier", "http", "Succeeded", free()),
		},
	}
	promDir := t.TempDir()
	cfg := clusterConfigWithFileSD(t, promDir, "1s", groups)
	promPort := testsupport.FreePort(t)
	promURL := "http://" + addr(promPort)
	prom := testsupport.StartExternal(t, "prometheus", testsupport.PrometheusBinary(), []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(promDir, "data"),
		"--web.listen-address=" + addr(promPort),
		"--log.level=warn",
	}, nil)
	if err := testsupport.WaitHTTP(promURL+"/-/ready", http.StatusOK, 30*time.Second); err != nil {
		t.Fatalf("prometheus: %v\n%s", err, prom.Logs())
	}

	verifierMetrics := startVerifier(t, st, rd, verifierPort, promURL)

	// Relabelling: one target per job, on its metrics port, all up.
	wantTargets := map[string]string{
		"ac-service":         "ac-service-5d8f-a/ac-service " + addr(st.Topo.AC[0]),
		"global-controller":  "global-controller-6c9-a/global-controller " + addr(st.Topo.GC[0].HTTP),
		"meeting-controller": "meeting-controller-7b-a/meeting-controller " + addr(st.Topo.MC[0].Health),
		"redis":              "redis-0/redis-exporter " + redisExp.Addr,
		"postgres":           "postgres-0/postgres-exporter " + pgExp.Addr,
		"verifier":           "verifier-84-a/verifier " + addr(verifierPort),
	}
	testsupport.Eventually(t, 60*time.Second, "every job has exactly its one target up", func() error {
		return checkTargets(promURL, wantTargets)
	})

	// The verifier's own prometheus.targets check against this Prometheus.
	testsupport.Eventually(t, 60*time.Second, "verifier check prometheus.targets passes", func() error {
		v, err := scrapeValue(verifierMetrics, "verifier_check_up", "check", "prometheus.targets")
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("verifier_check_up{check=\"prometheus.targets\"} = %v", v)
		}
		return nil
	})

	// Rules: all evaluated without error; nothing pending on a healthy stack.
	testsupport.Eventually(t, 30*time.Second, "every rule evaluated without error", func() error {
		return checkRules(promURL)
	})
	// A scrape that times out on a loaded machine makes a Down alert pending
	// for a moment (it fires only after a minute); the steady state is quiet.
	testsupport.Eventually(t, 20*time.Second, "no alert pending or firing on a healthy stack (verifier checks aside)", func() error {
		active, err := activeAlerts(promURL)
		if err != nil {
			return err
		}
		var bad []string
		for _, a := range active {
			if !strings.HasPrefix(a, "Verifier") {
				bad = append(bad, a)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("active: %s", strings.Join(bad, "; "))
		}
		return nil
	})

	// Every query is valid PromQL, and every metric it names is exported.
	exported := map[string]bool{}
	for _, u := range []string{
		st.Topo.ACURL(0) + "/metrics", st.Topo.GCHTTPURL(0) + "/metrics", st.Topo.MCHealthURL(0) + "/metrics",
		verifierMetrics, "http://" + redisExp.Addr + "/metrics", "http://" + pgExp.Addr + "/metrics",
	} {
		names, err := exportedNames(u)
		if err != nil {
			t.Fatal(err)
		}
		for n := range names {
			exported[n] = true
		}
	}
	_, dqs := loadDashboards(t)
	var queries []query
	for _, q := range dqs {
		if q.ds == promUID {
			queries = append(queries, q)
		}
	}
	for _, a := range loadAlerts(t) {
		queries = append(queries, query{where: a.file + ": " + a.name, ds: promUID, expr: a.expr})
	}
	checked := 0
	for _, q := range queries {
		if err := promQuery(promURL, grafanaVars.Replace(q.expr)); err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
		}
		for _, n := range metricNames(q.expr) {
			checked++
			if !exported[n] && !synthetic[n] {
				t.Errorf("%s: metric %s is not exported by any binary or exporter (query %q)", q.where, n, q.expr)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d metric references checked: the lexer or the loaders found too little", checked)
	}
	t.Logf("%d queries, %d metric references checked against %d exported names in %v",
		len(queries), checked, len(exported), time.Since(start).Round(time.Second))
}

func pod(app, name, container, port, phase, address string) sdGroup {
	return sdGroup{Targets: []string{address}, Labels: map[string]string{
		"__meta_kubernetes_namespace":                         "dark-tower",
		"__meta_kubernetes_pod_name":                          name,
		"__meta_kubernetes_pod_container_name":                container,
		"__meta_kubernetes_pod_container_port_name":           port,
		"__meta_kubernetes_pod_phase":                         phase,
		"__meta_kubernetes_pod_label_app_kubernetes_io_name":  app,
		"__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
	}}
}

// The test's timers; the staleness threshold leaves room for a loaded 2-core
// machine so that no MC is marked stale while Prometheus scrapes.
var tuning = func() localstack.Tuning {
	tn := testsupport.TestTuning
	tn.StalenessThresholdSeconds = 10
	return tn
}()

// driveTraffic makes the counters and histograms dashboards use move:
// tokens issued and refused, JWKS, the registry listing and a join.
func driveTraffic(t *testing.T, st *testsupport.ControlPlane) {
	t.Helper()
	ac := st.Topo.ACURL(0)
	tok, err := auth.TokenSource(context.Background(), ac, localstack.VerifierClientID, st.Topo.Secrets.VerifierClientSecret).Token()
	if err != nil {
		t.Fatalf("verifier token: %v", err)
	}
	for _, c := range []struct {
		form url.Values
		want int
	}{
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {localstack.VerifierClientID}, "client_secret": {"wrong"}}, http.StatusUnauthorized},
		{url.Values{"grant_type": {"password"}, "client_id": {localstack.VerifierClientID}}, http.StatusBadRequest},
	} {
		resp, err := http.PostForm(ac+auth.TokenPath, c.form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("token request %v: %d, want %d", c.form.Get("grant_type"), resp.StatusCode, c.want)
		}
	}
	mustGet(t, ac+auth.JWKSPath, "", http.StatusOK)
	mustGet(t, st.Topo.GCHTTPURL(0)+"/api/v1/meeting-controllers", tok.AccessToken, http.StatusOK)
	// Joins need the web-client's token (scope meeting.join).
	join, err := auth.TokenSource(context.Background(), ac, localstack.WebClientID, st.Topo.Secrets.WebClientSecret).Token()
	if err != nil {
		t.Fatalf("web-client token: %v", err)
	}
	testsupport.Eventually(t, 30*time.Second, "a meeting join is assigned", func() error {
		req, _ := http.NewRequest(http.MethodPost, st.Topo.GCHTTPURL(0)+"/api/v1/meetings/obs-check/join", nil)
		req.Header.Set("Authorization", "Bearer "+join.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("join answered %d: %s", resp.StatusCode, b)
		}
		return nil
	})
}

func mustGet(t *testing.T, u, bearer string, want int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", u, resp.StatusCode, want)
	}
}

// startVerifier runs `verifier serve` against the stack and Prometheus and
// returns its /metrics URL once the first run has finished.
func startVerifier(t *testing.T, st *testsupport.ControlPlane, rd *testsupport.Redis, port int, promURL string) string {
	t.Helper()
	var jobs []string
	for _, j := range observability.Jobs {
		jobs = append(jobs, fmt.Sprintf("{name: %s}", j))
	}
	cfg := fmt.Sprintf(`version: 1
mode: local
deadline: 20s
timeouts: {default: 3s}
backoff: {initial: 200ms, max: 1s}
redis: {address: %q, password: {env: REDIS_PASSWORD}}
postgres: {url: {env: DATABASE_URL}}
ac: {urls: [%q], client_id: verifier, client_secret: {env: VERIFIER_CLIENT_SECRET}}
gc: {grpc_addresses: [%q]}
mc: {expected_count: 1, region: local, heartbeat_threshold: 10s, health_urls: [%q]}
prometheus: {url: %q, jobs: [%s]}
`, rd.Addr(), st.Topo.ACURL(0), st.Topo.GCGRPCAddr(0), st.Topo.MCHealthURL(0), promURL, strings.Join(jobs, ", "))
	path := filepath.Join(t.TempDir(), "verifier.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	v := testsupport.StartExternal(t, "verifier", testsupport.Binary(t, "verifier"),
		[]string{"serve", "--config", path, "--listen", listen, "--interval", "1s"},
		map[string]string{
			"REDIS_PASSWORD":         rd.Password,
			"DATABASE_URL":           st.Topo.DatabaseURL.Reveal(),
			"VERIFIER_CLIENT_SECRET": st.Topo.Secrets.VerifierClientSecret.Reveal(),
		})
	u := "http://" + listen + "/metrics"
	testsupport.Eventually(t, 60*time.Second, "the verifier finished a run", func() error {
		names, err := exportedNames(u)
		if err != nil {
			return err
		}
		if !names["verifier_check_up"] {
			return fmt.Errorf("no verifier_check_up yet")
		}
		return nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("verifier output:\n%s", v.Logs())
		}
	})
	return u
}

// secret is a Secret in dark-tower holding one of the test servers' passwords.
func secret(name, key, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": name, "namespace": appNS},
		"stringData": map[string]any{key: value},
	}}
}

// startExporterFromPatch runs a Debian exporter with the environment and
// arguments of the sidecar in patch: Secret references resolved from
// secrets, addresses rewritten by addrs, and the listen address moved to a
// free loopback port. It proves the patch's variable names work.
func startExporterFromPatch(t *testing.T, patch, bin string, secrets manifest.Set, addrs *strings.Replacer) *testsupport.Exporter {
	t.Helper()
	sts, _, err := manifest.WorkloadOf(loadObject(t, patch))
	if err != nil {
		t.Fatal(err)
	}
	c := sts.Template.Spec.Containers[0]
	listen := "127.0.0.1:" + strconv.Itoa(testsupport.FreePort(t))
	env, err := secrets.ResolveEnv(sts.Namespace, c)
	if err != nil {
		t.Fatalf("%s: %v", patch, err)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			continue
		}
		env[e.Name] = addrs.Replace(env[e.Name])
		if strings.HasSuffix(e.Name, "WEB_LISTEN_ADDRESS") {
			env[e.Name] = listen
		}
	}
	var args []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--web.listen-address=") {
			a = "--web.listen-address=" + listen
		}
		args = append(args, a)
	}
	if len(args) == 0 && env["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] == "" {
		t.Fatalf("%s: no listen address to move", patch)
	}
	e := &testsupport.Exporter{Addr: listen, External: testsupport.StartExternal(t, c.Name, bin, args, env)}
	if err := testsupport.WaitHTTP("http://"+listen+"/metrics", http.StatusOK, 20*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", e.Name, err, e.Logs())
	}
	up := map[string]string{"redis-exporter": "redis_up", "postgres-exporter": "pg_up"}[e.Name]
	testsupport.Eventually(t, 20*time.Second, e.Name+" reaches its server with the Secret's password", func() error {
		v, err := scrapeValue("http://"+listen+"/metrics", up, "", "")
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("%s = %v\n%s", up, v, e.Logs())
		}
		return nil
	})
	return e
}

// exportedNames parses a /metrics page with the Prometheus text parser and
// returns every series name it exposes (histograms as _bucket, _sum and
// _count; summaries with _sum and _count).
func exportedNames(u string) (map[string]bool, error) {
	fams, err := scrape(u)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for name, f := range fams {
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case "SUMMARY":
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out, nil
}

func scrape(u string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", u, err)
	}
	return fams, nil
}

// scrapeValue reads the gauge or untyped value of name{label=value} (any
// series of name when label is empty).
func scrapeValue(u, name, label, value string) (float64, error) {
	fams, err := scrape(u)
	if err != nil {
		return 0, err
	}
	f, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("%s: no %s", u, name)
	}
	for _, m := range f.GetMetric() {
		match := label == ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), nil
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("%s: no %s{%s=%q}", u, name, label, value)
}

func promGet(base, path string, params url.Values, out any) error {
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %s", path, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s", env.Error)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Data, out)
}

func promQuery(base, expr string) error {
	return promGet(base, "/api/v1/query", url.Values{"query": {expr}}, nil)
}

func checkTargets(base string, want map[string]string) error {
	var d struct {
		Active []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := promGet(base, "/api/v1/targets", url.Values{"state": {"active"}}, &d); err != nil {
		return err
	}
	got := map[string]string{}
	var problems []string
	for _, a := range d.Active {
		job := a.Labels["job"]
		if _, dup := got[job]; dup {
			problems = append(problems, "job "+job+" has more than one target")
		}
		got[job] = a.Labels["pod"] + "/" + a.Labels["container"] + " " + a.Labels["instance"]
		if a.Labels["namespace"] != "dark-tower" {
			problems = append(problems, fmt.Sprintf("%s: namespace label %q", job, a.Labels["namespace"]))
		}
		if a.Health != "up" {
			problems = append(problems, fmt.Sprintf("%s %s is %s: %s", job, a.ScrapeURL, a.Health, a.LastError))
		}
	}
	for job, w := range want {
		if got[job] != w {
			problems = append(problems, fmt.Sprintf("job %s: target %q, want %q", job, got[job], w))
		}
	}
	if len(got) != len(want) {
		problems = append(problems, fmt.Sprintf("jobs %v, want %v", sortedKeys(got), sortedKeys(want)))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func checkRules(base string) error {
	var d struct {
		Groups []struct {
			Rules []struct {
				Name           string `json:"name"`
				Health         string `json:"health"`
				LastError      string `json:"lastError"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := promGet(base, "/api/v1/rules", url.Values{}, &d); err != nil {
		return err
	}
	n := 0
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" || r.LastError != "" || strings.HasPrefix(r.LastEvaluation, "0001-") {
				return fmt.Errorf("rule %s: health %q, error %q, last evaluation %s", r.Name, r.Health, r.LastError, r.LastEvaluation)
			}
		}
	}
	if want := len(alertNamesFromFiles()); n != want || n == 0 {
		return fmt.Errorf("Prometheus loaded %d rules, the files define %d", n, want)
	}
	return nil
}

// alertNamesFromFiles counts "- alert:" lines, independently of loadAlerts.
func alertNamesFromFiles() []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(rulesDir, "*.yaml"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if s := strings.TrimSpace(l); strings.HasPrefix(s, "- alert:") {
				out = append(out, strings.TrimSpace(strings.TrimPrefix(s, "- alert:")))
			}
		}
	}
	return out
}

func activeAlerts(base string) ([]string, error) {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := promGet(base, "/api/v1/alerts", url.Values{}, &d); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range d.Alerts {
		out = append(out, fmt.Sprintf("%s(%s) %v", a.Labels["alertname"], a.State, a.Labels))
	}
	return out, nil
}
