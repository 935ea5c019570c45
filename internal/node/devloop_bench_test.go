//go:build node

package node_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkDevLoop measures `make dev PROFILE=node` on a node of its own
// (make bench-node, docs/benchmarks.md): the first green report from an
// empty node, then, per iteration, one GC source edit to the next green
// report, beside that iteration's floor: the incremental `go build` of the
// global-controller on the host, plus the time from the new image deployed
// to the pods Ready (rollout), plus the verifier's own run. Reported as
// medians; each iteration's log says where its time went (phases).
func BenchmarkDevLoop(b *testing.B) {
	r := newRun(b) // brings the node down at the end
	r.mustMake(30*time.Minute, "node-up")
	start := time.Now()
	d := r.startDev()
	defer d.stop(b)
	report, code, _, off := d.nextReport(b, 0, 30*time.Minute)
	if code != 0 {
		b.Fatalf("first skaffold dev iteration: exit %d:\n%s", code, lastLines(report, 40))
	}
	b.Logf("make dev PROFILE=node from an empty node to the first green report: %s", time.Since(start).Round(time.Second))

	src := filepath.Join(r.repo, "internal", "gc", "version.go")
	orig, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := os.WriteFile(src, orig, 0o644); err != nil {
			b.Errorf("restoring %s: %v", src, err)
		}
	})
	version := regexp.MustCompile(`const Version = "[^"]*"`)
	edits := 0
	b.Run("gc-edit", func(b *testing.B) {
		r.t = b
		var total, floor []time.Duration
		for range b.N {
			d.watching(b, off, 5*time.Minute)
			edits++
			edited := version.ReplaceAll(orig, []byte(`const Version = "`+freshVersion("bench")+`"`))
			if err := os.WriteFile(src, edited, 0o644); err != nil {
				b.Fatal(err)
			}
			t0, from := time.Now(), off
			report, code, _, off = d.nextReport(b, off, 15*time.Minute)
			total = append(total, time.Since(t0))
			b.Logf("edit %d, since the save: %s", edits, d.phases(from, off, t0))
			if code != 0 {
				b.Fatalf("iteration %d: exit %d:\n%s", edits, code, lastLines(report, 40))
			}
			f := r.goBuild("./cmd/global-controller") + r.rollout("global-controller") +
				lastDuration(b, report, `blocked in (\S+):`, "")
			floor = append(floor, f)
			b.Logf("edit %d: %s to green, floor %s", edits, total[len(total)-1].Round(100*time.Millisecond), f.Round(100*time.Millisecond))
		}
		mt, mf := median(total), median(floor)
		b.ReportMetric(mt.Seconds(), "s-edit-to-green")
		b.ReportMetric(mf.Seconds(), "s-floor")
		b.ReportMetric(mt.Seconds()/mf.Seconds(), "x-floor")
	})
}

// phaseMarks are the lines of one iteration, in order, whose arrival times
// show where the time goes.
var phaseMarks = []struct{ name, line string }{
	{"noticed", "Generating tags"},
	{"built", "Build [dark-tower/global-controller] succeeded"},
	{"deploying", "Starting deploy"},
	{"stabilized", "Deployments stabilized in"},
	{"migration waited", "migrate-wait: "},
	{"rollouts done", "verify-cluster: waited "},
	{"job created", "verify-cluster: job/verifier started"},
	{"verifier pod running", "verify-cluster: reading pod"},
}

// phases says when each mark of the output between from and to arrived,
// counted from t0, and when the report ended.
func (d *dev) phases(from, to int, t0 time.Time) string {
	seg := d.output()[from:to]
	var parts []string
	for _, m := range phaseMarks {
		if i := strings.Index(seg, m.line); i >= 0 {
			parts = append(parts, fmt.Sprintf("%s +%.1fs", m.name, d.arrived(from+i).Sub(t0).Seconds()))
		}
	}
	parts = append(parts, fmt.Sprintf("report +%.1fs", d.arrived(to-1).Sub(t0).Seconds()))
	return strings.Join(parts, ", ")
}

// rollout is how long the cluster took from the new image deployed to the
// new pods Ready, by its own clock: from the first live pod's creation
// (the Deployment controller acting on the apply) to the last one's Ready
// condition. Skaffold's "Deployments stabilized" does not say: from the
// second iteration on its status check does not watch the apps
// (docs/kind.md). Whole seconds, as the API gives them.
func (r *run) rollout(app string) time.Duration {
	r.t.Helper()
	out := r.mustKubectl("-n", "dark-tower", "get", "pods", "-l", "app.kubernetes.io/name="+app, "-o", "json")
	var pods struct {
		Items []struct {
			Metadata struct {
				CreationTimestamp time.Time  `json:"creationTimestamp"`
				DeletionTimestamp *time.Time `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				Conditions []struct {
					Type, Status       string
					LastTransitionTime time.Time `json:"lastTransitionTime"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		r.t.Fatalf("pods of %s: %v", app, err)
	}
	var first, ready time.Time
	for _, p := range pods.Items {
		if p.Metadata.DeletionTimestamp != nil {
			continue
		}
		if first.IsZero() || p.Metadata.CreationTimestamp.Before(first) {
			first = p.Metadata.CreationTimestamp
		}
		ok := false
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ok = true
				if c.LastTransitionTime.After(ready) {
					ready = c.LastTransitionTime
				}
			}
		}
		if !ok {
			r.t.Fatalf("a live %s pod is not Ready after a green report:\n%s", app, out)
		}
	}
	if first.IsZero() {
		r.t.Fatalf("no live %s pod", app)
	}
	return ready.Sub(first)
}

// goBuild times an incremental `go build` of pkg on the host.
func (r *run) goBuild(pkg string) time.Duration {
	r.t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(r.dir, "floor-build"), pkg)
	cmd.Dir = r.repo
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return time.Since(start)
}

// lastDuration parses the last match of pattern's group in s as a duration
// (suffix appended before parsing).
func lastDuration(tb testing.TB, s, pattern, suffix string) time.Duration {
	tb.Helper()
	m := regexp.MustCompile(pattern).FindAllStringSubmatch(s, -1)
	if m == nil {
		tb.Fatalf("no %q in:\n%s", pattern, lastLines(s, 30))
	}
	d, err := time.ParseDuration(strings.TrimSpace(m[len(m)-1][1]) + suffix)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
