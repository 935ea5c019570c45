package classify

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Every class a probe or the classifier can name has a row in the table, so
// no failure goes out without a cause and a next command.
func TestEveryClassHasARow(t *testing.T) {
	files, _ := filepath.Glob("../probe/*.go")
	files = append(files, "classify.go")
	re := regexp.MustCompile(`(?:Failf\(|FailVars\(|return )"([a-z0-9]+\.[a-z-]+)"`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen++
			e, ok := table[m[1]]
			if !ok {
				t.Errorf("%s names class %q, which has no row in the table", f, m[1])
				continue
			}
			if e.cause == "" || e.local == "" {
				t.Errorf("class %q lacks a cause or a next command", m[1])
			}
		}
	}
	if seen < 40 {
		t.Fatalf("found only %d class names; the scan is broken", seen)
	}
}

func TestScrapeClass(t *testing.T) {
	cases := map[string]string{
		`Get "http://x/metrics": dial tcp 127.0.0.1:9: connect: connection refused`: "prometheus.target-refused",
		`Get "http://x/metrics": context deadline exceeded`:                         "prometheus.target-timeout",
		`server returned HTTP status 404 Not Found`:                                 "prometheus.target-http",
	}
	for in, want := range cases {
		if got := ScrapeClass(in); got != want {
			t.Errorf("%q -> %s, want %s", in, got, want)
		}
	}
}
