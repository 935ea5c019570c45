package serve

import (
	"io"

	"github.com/darktower/devstack/verifier/report"
)

// NewTextForTest is the plain-lines text writer (no terminal).
func NewTextForTest(w io.Writer, n int) *report.Text { return report.NewText(w, false, n) }
