package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/darktower/devstack/verifier/runner"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnit writes the report as JUnit XML: a failed check is a failure, a
// blocked one is skipped with the check that blocked it.
func JUnit(w io.Writer, r *runner.Report) error {
	secs := func(s float64) string { return fmt.Sprintf("%.3f", s) }
	suite := junitSuite{Name: "dark-tower-verifier", Tests: len(r.Checks), Failures: r.Count(runner.Fail),
		Skipped: r.Count(runner.Blocked), Time: secs(r.Duration().Seconds()), Timestamp: r.StartedAt.UTC().Format("2006-01-02T15:04:05")}
	for _, c := range r.Checks {
		group, _, _ := strings.Cut(c.ID, ".")
		tc := junitCase{Classname: "verifier." + group, Name: c.ID, Time: secs(c.Duration.Seconds())}
		switch c.Status {
		case runner.Fail:
			tc.Failure = &junitFailure{Message: c.Class.Cause, Type: string(c.Class.ID), Body: failureText(c)}
		case runner.Blocked:
			tc.Skipped = &junitSkipped{Message: "blocked by " + c.BlockedBy}
		default:
			tc.SystemOut = c.Evidence
		}
		suite.Cases = append(suite.Cases, tc)
	}
	doc := junitSuites{Name: "dark-tower-verifier", Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped,
		Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// failureText is the four parts every failure states.
func failureText(c runner.CheckResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "what:     %s failed: %s\n", c.ID, c.Error)
	ev := c.Evidence
	if ev == "" {
		ev = c.Error
	}
	fmt.Fprintf(&b, "evidence: %s (%d attempt%s", ev, c.Attempts, plural(c.Attempts))
	switch {
	case c.Definite:
		b.WriteString(", the same definite answer twice")
	case c.DeadlineReached:
		b.WriteString(", still failing at the deadline")
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "cause:    %s\n", c.Class.Cause)
	fmt.Fprintf(&b, "next:     %s\n", c.Class.Next)
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
