// Package report renders a run for people (text), for programs (json, with a
// schema version) and for CI (junit). Every string in a report has already
// been scrubbed of secrets by the runner.
package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/runner"
)

// SchemaVersion is bumped on any incompatible change to the JSON document.
const SchemaVersion = 1

// Document is the JSON report: one document per run, however many attempts.
type Document struct {
	SchemaVersion   int       `json:"schema_version"`
	Kind            string    `json:"kind"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	DeadlineSeconds float64   `json:"deadline_seconds"`
	Concurrency     int       `json:"concurrency"`
	DeadlineReached bool      `json:"deadline_reached"`
	ExitCode        int       `json:"exit_code"`
	Healthy         bool      `json:"healthy"`
	Summary         Summary   `json:"summary"`
	Checks          []Check   `json:"checks"`
}

// Summary counts verdicts.
type Summary struct {
	Total   int `json:"total"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Blocked int `json:"blocked"`
}

// Check is one check in the JSON report.
type Check struct {
	ID              string            `json:"id"`
	Status          runner.Status     `json:"status"`
	Attempts        int               `json:"attempts"`
	DurationSeconds float64           `json:"duration_seconds"`
	DependsOn       []string          `json:"depends_on,omitempty"`
	BlockedBy       string            `json:"blocked_by,omitempty"`
	Targets         []string          `json:"targets,omitempty"`
	Evidence        string            `json:"evidence,omitempty"`
	Error           string            `json:"error,omitempty"`
	Class           *classify.Verdict `json:"class,omitempty"`
	EndedDefinite   bool              `json:"ended_on_definite_answer,omitempty"`
	DeadlineReached bool              `json:"deadline_reached,omitempty"`
}

// NewDocument converts a report.
func NewDocument(r *runner.Report) Document {
	d := Document{
		SchemaVersion: SchemaVersion, Kind: "dark-tower-verifier-report",
		StartedAt: r.StartedAt.UTC(), FinishedAt: r.FinishedAt.UTC(),
		DurationSeconds: r.Duration().Seconds(), DeadlineSeconds: r.Deadline.Seconds(),
		Concurrency: r.Concurrency, DeadlineReached: r.DeadlineReached,
		ExitCode: r.ExitCode(), Healthy: r.ExitCode() == runner.ExitHealthy,
		Summary: Summary{Total: len(r.Checks), Passed: r.Count(runner.Pass), Failed: r.Count(runner.Fail), Blocked: r.Count(runner.Blocked)},
		Checks:  []Check{},
	}
	for _, c := range r.Checks {
		jc := Check{ID: c.ID, Status: c.Status, Attempts: c.Attempts, DurationSeconds: c.Duration.Seconds(),
			DependsOn: c.DependsOn, BlockedBy: c.BlockedBy, Targets: c.Targets, Evidence: c.Evidence, Error: c.Error,
			EndedDefinite: c.Definite, DeadlineReached: c.DeadlineReached}
		if c.Class.ID != "" {
			cl := c.Class
			jc.Class = &cl
		}
		d.Checks = append(d.Checks, jc)
	}
	return d
}

// JSON writes the report as one indented JSON document.
func JSON(w io.Writer, r *runner.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewDocument(r))
}
