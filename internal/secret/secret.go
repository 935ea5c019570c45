// Package secret holds sensitive strings in a type that refuses to print them.
//
// Every formatting path (fmt verbs, slog, JSON, text marshalling) yields
// "[REDACTED]"; only Reveal returns the bytes, so a leak needs an explicit call.
package secret

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Value is a secret string. The zero value is an empty secret.
type Value struct{ s string }

// New wraps s.
func New(s string) Value { return Value{s: s} }

// Reveal returns the secret itself. Call it only where the secret is used.
func (v Value) Reveal() string { return v.s }

// Empty reports whether no secret is set.
func (v Value) Empty() bool { return v.s == "" }

func (v Value) String() string                { return redacted }
func (v Value) GoString() string              { return redacted }
func (v Value) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (v Value) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (v Value) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
