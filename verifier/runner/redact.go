package runner

import (
	"strings"

	"github.com/darktower/devstack/internal/secret"
)

const redacted = "[REDACTED]"

// Redactor removes secret values from text, whatever library put them there
// (a DSN echoed in an error, a token in a message).
type Redactor struct{ secrets []string }

// NewRedactor scrubs the given secrets; values shorter than 4 bytes are
// ignored so that a one-letter secret does not shred every message.
func NewRedactor(values ...secret.Value) *Redactor {
	r := &Redactor{}
	r.Add(values...)
	return r
}

// Add scrubs more secrets.
func (r *Redactor) Add(values ...secret.Value) {
	for _, v := range values {
		if s := v.Reveal(); len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Redact returns s without any secret.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}
