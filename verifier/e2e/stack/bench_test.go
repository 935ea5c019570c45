package stack

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/darktower/devstack/verifier/e2e/e2eutil"
)

type verdictTime struct {
	total, slowest, sum float64
	slowestID           string
}

func measure(t testing.TB, s *stack, concurrency string, withProm bool) verdictTime {
	t.Helper()
	cfg, want := s.config(30*time.Second), allChecks
	if !withProm {
		cfg, want = cfg.With("prometheus", nil), checksExcept("kubernetes.", "prometheus.")
	}
	r := e2eutil.Run(t, cfg, s.env(), "run", "--output", "json", "--concurrency", concurrency)
	e2eutil.Expect(t, r, 0, nil, want...)
	if len(r.Doc.Checks) != len(want) {
		t.Fatalf("%d checks ran, want %d", len(r.Doc.Checks), len(want))
	}
	v := verdictTime{total: r.Doc.DurationSeconds}
	for _, c := range r.Doc.Checks {
		v.sum += c.DurationSeconds
		if c.DurationSeconds > v.slowest {
			v.slowest, v.slowestID = c.DurationSeconds, c.ID
		}
	}
	return v
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// BenchmarkTimeToVerdict is the benchmark recorded in docs/benchmarks.md:
// the healthy stack verified in parallel and one check at a time,
// alternating, in the same run. Target: the parallel run takes at most 1.3
// times its slowest single check. It reports medians; it asserts nothing
// about speed.
//
//	go test -run '^$' -bench TimeToVerdict -benchtime 1x ./verifier/e2e/stack/
func BenchmarkTimeToVerdict(b *testing.B) {
	s := startStack(b)
	const rounds = 3
	for b.Loop() {
		timeToVerdictOf(b, s, rounds, true)
		// Without Prometheus, whose check waits for a scrape newer than the
		// run, the times are the checks' own work and the chain of dependencies.
		timeToVerdictOf(b, s, rounds, false)
	}
}

func timeToVerdictOf(b *testing.B, s *stack, rounds int, withProm bool) {
	t := b
	var parTotal, parSlowest, parRatio, serTotal, serSum []float64
	slowestIDs := map[string]int{}
	for range rounds {
		p := measure(t, s, "0", withProm)
		q := measure(t, s, "1", withProm)
		parTotal, parSlowest = append(parTotal, p.total), append(parSlowest, p.slowest)
		parRatio = append(parRatio, p.total/p.slowest)
		serTotal, serSum = append(serTotal, q.total), append(serSum, q.sum)
		slowestIDs[p.slowestID]++
	}
	ratio := median(parRatio)
	t.Logf("prometheus %t: time to verdict over %d rounds (median): parallel %.3fs, its slowest check %.3fs (%v), ratio %.3f; "+
		"--concurrency 1 %.3fs (sum of check times %.3fs); speed-up %.2fx",
		withProm, rounds, median(parTotal), median(parSlowest), slowestIDs, ratio, median(serTotal), median(serSum), median(serTotal)/median(parTotal))
	fmt.Printf("BENCH prometheus=%t parallel_total=%v parallel_slowest=%v ratio=%v serial_total=%v serial_sum=%v slowest=%v\n",
		withProm, parTotal, parSlowest, parRatio, serTotal, serSum, slowestIDs)
	suffix := "-no-prometheus"
	if withProm {
		suffix = ""
	}
	b.ReportMetric(median(parTotal), "parallel-s"+suffix)
	b.ReportMetric(median(parSlowest), "slowest-check-s"+suffix)
	b.ReportMetric(ratio, "ratio"+suffix)
	b.ReportMetric(median(serTotal), "concurrency1-s"+suffix)
}
