package observability_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// Prometheus's own PromQL parser would pull github.com/prometheus/prometheus
// into go.mod (it bumped the go directive and shared dependencies here), so
// metric names are found by this small lexer instead. The expressions are
// also sent to a real Prometheus in TestStackExportsEveryReferencedMetric,
// whose parser rejects anything this lexer might misread as valid.

// promqlKeywords are identifiers that are never metric names.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true,
	"ignoring": true, "group_left": true, "group_right": true, "bool": true,
	"offset": true, "inf": true, "nan": true, "atan2": true,
	// aggregation operators are keywords too ("sum by (le) (...)")
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// groupingKeywords are followed by a parenthesised list of label names.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names an expression selects, sorted and
// unique: identifiers that are not functions (followed by "("), keywords,
// label names in grouping lists or inside {...}, strings, numbers,
// durations or Grafana variables ($var, ${var}, $__rate_interval).
func metricNames(expr string) []string {
	seen := map[string]bool{}
	i, n := 0, len(expr)
	skipGroup := false // the next "(" opens a label list
	for i < n {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '#': // comment to end of line
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '{': // label matchers: names and values, never metrics
			i = skipBalanced(expr, i, '{', '}')
		case c == '[': // range or subquery duration
			i = skipBalanced(expr, i, '[', ']')
		case c == '$':
			i++
			if i < n && expr[i] == '{' {
				i = skipBalanced(expr, i, '{', '}')
			} else {
				for i < n && isIdentChar(expr[i]) {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < n && expr[i+1] >= '0' && expr[i+1] <= '9':
			// numbers and durations: 0.95, 5m, 1h30m, 1e3, 0x1f
			for i < n && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case c == '(' && skipGroup:
			i = skipBalanced(expr, i, '(', ')')
			skipGroup = false
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			j := i
			for j < n && (expr[j] == ' ' || expr[j] == '\t' || expr[j] == '\n' || expr[j] == '\r') {
				j++
			}
			lower := strings.ToLower(word)
			switch {
			case groupingKeywords[lower]:
				skipGroup = j < n && expr[j] == '('
			case promqlKeywords[lower]:
			case j < n && expr[j] == '(':
				// a function or aggregation call
			default:
				seen[word] = true
			}
		default:
			i++
		}
	}
	out := make([]string, 0, len(seen))
	for w := range seen {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i
// (backslash escapes in "..." and '...'; none in raw `...`).
func skipString(s string, i int) int {
	q := s[i]
	i++
	for i < len(s) {
		switch {
		case s[i] == '\\' && q != '`':
			i += 2
			continue
		case s[i] == q:
			return i + 1
		}
		i++
	}
	return i
}

// skipBalanced returns the index after the bracket that closes the one at i,
// skipping strings inside.
func skipBalanced(s string, i int, open, close byte) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
			continue
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job="ac-service"} == 0 or absent(up{job="ac-service"})`, []string{"up"}},
		{`sum by (job, namespace) (rate(ac_token_issuance_total{status="error"}[5m])) > 0`, []string{"ac_token_issuance_total"}},
		{`sum(rate(x_total[5m])) by (le, instance) / on (instance) group_left (pod) y`, []string{"x_total", "y"}},
		{"histogram_quantile(0.95,\n  sum by (le) (rate(ac_token_issuance_duration_seconds_bucket[$__rate_interval])))",
			[]string{"ac_token_issuance_duration_seconds_bucket"}},
		{`count(verifier_check_up == 0) or vector(0)`, []string{"verifier_check_up"}},
		{`time() - max(verifier_last_run_timestamp_seconds) > 300`, []string{"verifier_last_run_timestamp_seconds"}},
		{`mc_registered == 0 unless mc_draining == 1`, []string{"mc_draining", "mc_registered"}},
		{`label_replace(up, "dst", "$1", "instance", "(.*):.*")`, []string{"up"}},
		{`rate(a[5m] offset 1h) * bool b`, []string{"a", "b"}},
		{`max_over_time(deriv(c[10m:1m])[1h:]) # a comment mentioning not_a_metric`, []string{"c"}},
		{`{__name__="ignored"}`, []string{}},
		{`sum by (grpc_method) (rate(grpc_server_handled_total{grpc_code=~"Internal|Unknown", x='a{b'}[${interval}]))`,
			[]string{"grpc_server_handled_total"}},
		{`1e3 * .5 + 0x1f - Inf + NaN`, []string{}},
		{`topk(5, sum without (pod) (process_resident_memory_bytes{job="$job"}))`, []string{"process_resident_memory_bytes"}},
		{`ALERTS{alertstate="firing"}`, []string{"ALERTS"}},
	}
	for _, c := range cases {
		got := metricNames(c.expr)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}
