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

	"github.com/darktower/devstack/verifier/classify"
)

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
		return Failed(classify.At(base, classify.Failf("prometheus.not-ready", "Prometheus is not ready: %s", body)), obs)
	case code != http.StatusOK:
		return Failed(classify.At(base, classify.Failf("prometheus.http-status", "/-/ready answered %d", code)), obs)
	}
	c, err := api.NewClient(api.Config{Address: base, Client: httpClient})
	if err != nil {
		return Failed(classify.At(base, err), obs)
	}
	bi, err := promv1.NewAPI(c).Buildinfo(ctx)
	if err != nil {
		return Failed(classify.At(base, classify.Failf("prometheus.api-error", "buildinfo: %v", err)), obs)
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
			firstErr = classify.Failf("prometheus.job-missing", "job %q has no targets (want %d); jobs present: %s", job.Name, want, jobNames(byJob))
		case len(down) > 0:
			d := down[0]
			firstErr = classify.Failf(classify.ScrapeClass(d.LastError), "job %q has %d of %d targets up (want %d); %s is down: %s",
				job.Name, up, len(targets), want, d.ScrapeURL, d.LastError)
		case stale > 0:
			firstErr = classify.Failf("prometheus.not-scraped", "job %q: %d targets not scraped since the verifier started", job.Name, stale)
			retryAfter = 250 * time.Millisecond
		default:
			firstErr = classify.Failf("prometheus.too-few-targets", "job %q has %d targets, want %d up", job.Name, len(targets), want)
		}
	}
	if firstErr != nil {
		return Result{Observed: strings.Join(obs, ", "), Err: classify.At(base, firstErr), RetryAfter: retryAfter}
	}
	return Pass("%s", strings.Join(obs, ", "))
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
