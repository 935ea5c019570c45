package probe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The prometheus section's checks.
var prometheusChecks = []Spec{
	{ID: "prometheus.ready", Enabled: hasPrometheus, Targets: prometheusURL, Services: prometheusNames, Probe: prometheusReady},
	{ID: "prometheus.targets", Needs: []string{"prometheus.ready"},
		Enabled: hasPrometheus, Targets: prometheusURL, Services: prometheusNames, Probe: prometheusTargets},
	{ID: "prometheus.storage", Needs: []string{"prometheus.ready"},
		Enabled: hasPrometheus, Services: prometheusNames, Probe: prometheusStorage,
		Targets: func(c *config.Config) []string { return withPath(prometheusURL(c), c.Prometheus.DataDir) }},
}

func hasPrometheus(c *config.Config) bool       { return c.Prometheus != nil }
func prometheusURL(c *config.Config) []string   { return []string{config.RedactURL(c.Prometheus.URL)} }
func prometheusNames(c *config.Config) []string { return dnsNames(c.Prometheus.URL) }

var httpClient = &http.Client{}

// httpGet fetches url within ctx and returns the status and up to 4 KiB of body.
func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// prometheusReady: /-/ready answers 200 and the API names the version.
func prometheusReady(ctx context.Context, t Target, log *slog.Logger) Result {
	base := strings.TrimRight(t.Cfg.Prometheus.URL, "/")
	code, body, err := httpGet(ctx, base+"/-/ready")
	if err != nil {
		return Failed(classify.At(base, err), "")
	}
	obs := fmt.Sprintf("/-/ready: %d %s", code, body)
	switch {
	case code == http.StatusServiceUnavailable:
		return Failed(classify.At(base, classify.Failf(classify.PrometheusNotReady, "Prometheus is not ready: %s", body)), obs)
	case code != http.StatusOK:
		return Failed(classify.At(base, classify.Failf(classify.PrometheusHTTPStatus, "/-/ready answered %d", code)), obs)
	}
	c, err := api.NewClient(api.Config{Address: base, Client: httpClient})
	if err != nil {
		return Failed(classify.At(base, err), obs)
	}
	bi, err := promv1.NewAPI(c).Buildinfo(ctx)
	if err != nil {
		return Failed(classify.At(base, classify.Failf(classify.PrometheusAPIError, "buildinfo: %v", err)), obs)
	}
	return Pass("ready, Prometheus %s", bi.Version)
}

// prometheusTargets: every expected job has at least min_targets targets up,
// each scraped after this run started (so an old success does not count).
func prometheusTargets(ctx context.Context, t Target, log *slog.Logger) Result {
	base := strings.TrimRight(t.Cfg.Prometheus.URL, "/")
	c, err := api.NewClient(api.Config{Address: base, Client: httpClient})
	if err != nil {
		return Failed(classify.At(base, err), "")
	}
	tr, err := promv1.NewAPI(c).Targets(ctx)
	if err != nil {
		return Failed(classify.At(base, err), "")
	}
	byJob := map[string][]promv1.ActiveTarget{}
	for _, at := range tr.Active {
		job := string(at.Labels["job"])
		byJob[job] = append(byJob[job], at)
	}
	var obs []string
	var firstErr error
	var retryAfter time.Duration
	for _, job := range t.Cfg.Prometheus.Jobs {
		targets := byJob[job.Name]
		want := job.MinTargetsOrDefault()
		up, stale := 0, 0
		var down []promv1.ActiveTarget
		for _, at := range targets {
			switch {
			case at.Health == promv1.HealthGood && at.LastScrape.After(t.Run.Started):
				up++
			case at.Health == promv1.HealthBad:
				down = append(down, at)
			default:
				stale++
			}
		}
		obs = append(obs, fmt.Sprintf("%s %d/%d up", job.Name, up, len(targets)))
		if up >= want || firstErr != nil {
			continue
		}
		switch {
		case len(targets) == 0:
			firstErr = classify.Failf(classify.PrometheusJobMissing, "job %q has no targets (want %d); jobs present: %s", job.Name, want, jobNames(byJob))
		case len(down) > 0:
			d := down[0]
			firstErr = classify.Failf(classify.ScrapeClass(d.LastError), "job %q has %d of %d targets up (want %d); %s is down: %s",
				job.Name, up, len(targets), want, d.ScrapeURL, d.LastError)
		case stale > 0:
			firstErr = classify.Failf(classify.PrometheusNotScraped, "job %q: %d targets not scraped since the verifier started", job.Name, stale)
			retryAfter = 250 * time.Millisecond
		default:
			firstErr = classify.Failf(classify.PrometheusTooFewTargets, "job %q has %d targets, want %d up", job.Name, len(targets), want)
		}
	}
	if firstErr != nil {
		return Result{Observed: strings.Join(obs, ", "), Err: classify.At(base, firstErr), RetryAfter: retryAfter}
	}
	return Pass("%s", strings.Join(obs, ", "))
}

// tsdbFailures are Prometheus's own counters of storage work that failed,
// each since the process started. A full or read-only disk shows first in
// prometheus_tsdb_wal_writes_failed_total: every scrape's commit fails and
// its samples are dropped, while /-/ready and the targets still look fine.
var tsdbFailures = []string{
	"prometheus_tsdb_wal_writes_failed_total",
	"prometheus_tsdb_wal_truncations_failed_total",
	"prometheus_tsdb_wal_corruptions_total",
	"prometheus_tsdb_checkpoint_creations_failed_total",
	"prometheus_tsdb_checkpoint_deletions_failed_total",
	"prometheus_tsdb_head_truncations_failed_total",
	"prometheus_tsdb_compactions_failed_total",
	"prometheus_tsdb_reloads_failures_total",
	"prometheus_tsdb_mmap_chunk_corruptions_total",
}

// prometheusStorage reads Prometheus's own /metrics: every TSDB failure
// counter is zero; in local mode its data directory also has room.
func prometheusStorage(ctx context.Context, t Target, log *slog.Logger) Result {
	base := strings.TrimRight(t.Cfg.Prometheus.URL, "/")
	fams, err := scrape(ctx, base+"/metrics")
	if err != nil {
		return Failed(classify.At(base, err), "")
	}
	var failed []string
	seen := 0
	for _, name := range tsdbFailures {
		f, ok := fams[name]
		if !ok {
			continue
		}
		seen++
		sum := 0.0
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		if sum > 0 {
			failed = append(failed, fmt.Sprintf("%s %g", name, sum))
		}
	}
	if seen == 0 {
		return Failed(classify.At(base, classify.Failf(classify.PrometheusAPIError, "%s/metrics has none of Prometheus's TSDB counters (%s...)", base, tsdbFailures[0])), "")
	}
	obs := fmt.Sprintf("TSDB failure counters: %d read, all 0", seen)
	if len(failed) > 0 {
		obs = strings.Join(failed, ", ")
	}
	free, diskErr := freeSpace(t.Cfg.Prometheus.DataDir)
	obs = joinObs(obs, free)
	if len(failed) > 0 {
		since := "it started"
		if g := fams["process_start_time_seconds"].GetMetric(); len(g) > 0 {
			since = "it started at " + time.Unix(int64(g[0].GetGauge().GetValue()), 0).UTC().Format(time.RFC3339)
		}
		return Failed(classify.At(base, classify.Failf(classify.PrometheusTSDBWriteFailed,
			"Prometheus failed to write its TSDB since %s, so samples are lost: %s", since, strings.Join(failed, ", "))), obs)
	}
	if diskErr != nil {
		return Failed(classify.At(base, diskErr), obs)
	}
	return Pass("%s", obs)
}

// scrape reads a Prometheus text exposition (up to 32 MiB).
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, classify.Failf(classify.PrometheusHTTPStatus, "%s answered %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, classify.Failf(classify.PrometheusAPIError, "%s: %v", url, err)
	}
	return fams, nil
}

func jobNames(m map[string][]promv1.ActiveTarget) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
