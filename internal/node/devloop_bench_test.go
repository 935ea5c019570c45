//go:build node

package node_test

import (
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
// to the pods Ready (Skaffold's "Deployments stabilized in"), plus the
// verifier's own run. Reported as medians.
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
			t0 := time.Now()
			var iter string
			report, code, iter, off = d.nextReport(b, off, 15*time.Minute)
			total = append(total, time.Since(t0))
			if code != 0 {
				b.Fatalf("iteration %d: exit %d:\n%s", edits, code, lastLines(report, 40))
			}
			f := r.goBuild("./cmd/global-controller") + lastDuration(b, iter, `Deployments stabilized in ([0-9.]+) seconds`, "s") +
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
