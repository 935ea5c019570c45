// Package config reads a binary's settings from the environment.
//
// A Reader collects every problem and Err reports the first one as a single
// line that names the variable and what it expects, so a misconfigured pod
// says exactly what to fix. Values of secret settings never appear in errors.
// Main runs a service binary from those settings, so every binary reads its
// environment, handles signals and exits the same way.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/secret"
)

// Reader reads typed settings from a lookup function (os.LookupEnv by default).
type Reader struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromEnv reads the process environment.
func FromEnv() *Reader { return &Reader{lookup: os.LookupEnv} }

// FromMap reads a fixed map, for tests.
func FromMap(m map[string]string) *Reader {
	return &Reader{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

// Err returns the first problem found, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return r.errs[0]
}

// Errs returns every problem found.
func (r *Reader) Errs() []error { return r.errs }

// Fail records a problem a caller found in a setting it read, so the caller's
// own checks are reported in the same form and order as the Reader's.
func (r *Reader) Fail(name, format string, a ...any) {
	r.errs = append(r.errs, &Error{Name: name, Msg: fmt.Sprintf(format, a...)})
}

// Error is a problem with one setting.
type Error struct {
	Name string
	Msg  string
}

func (e *Error) Error() string { return "config: " + e.Name + ": " + e.Msg }

// IsConfigError reports whether err came from a Reader.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

func (r *Reader) raw(name string, required bool, def string) (string, bool) {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		if required {
			r.Fail(name, "required but not set")
			return "", false
		}
		return def, false
	}
	return v, true
}

// String returns a required string.
func (r *Reader) String(name string) string {
	v, _ := r.raw(name, true, "")
	return v
}

// StringOr returns an optional string.
func (r *Reader) StringOr(name, def string) string {
	v, _ := r.raw(name, false, def)
	return v
}

// Secret returns a required secret; its value never reaches an error.
func (r *Reader) Secret(name string) secret.Value {
	v, _ := r.raw(name, true, "")
	return secret.New(v)
}

// SecretBase64 returns a required base64 secret that decodes to at least minBytes.
func (r *Reader) SecretBase64(name string, minBytes int) secret.Value {
	v, ok := r.raw(name, true, "")
	if !ok {
		return secret.Value{}
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(v)
	}
	if err != nil {
		r.Fail(name, "expected standard base64 (the value is not shown)")
		return secret.Value{}
	}
	if len(b) < minBytes {
		r.Fail(name, "expected at least %d bytes after base64 decoding, got %d", minBytes, len(b))
		return secret.Value{}
	}
	return secret.New(string(b))
}

// HostPort returns a required host:port listen or dial address.
func (r *Reader) HostPort(name, def string) string {
	v, ok := r.raw(name, def == "", def)
	if !ok {
		return v
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		r.Fail(name, "expected host:port such as 0.0.0.0:8080, got %q", v)
		return ""
	}
	if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
		r.Fail(name, "expected a port number 0-65535 in host:port, got %q", v)
		return ""
	}
	_ = host
	return v
}

// URL returns a required absolute URL whose scheme is one of schemes.
// The URL is not echoed in errors because it may carry a password.
func (r *Reader) URL(name string, schemes ...string) *url.URL {
	v, ok := r.raw(name, true, "")
	if !ok {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		r.Fail(name, "expected an absolute URL like %s://host:port", schemes[0])
		return nil
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return u
		}
	}
	r.Fail(name, "expected scheme %s, got %q", strings.Join(schemes, " or "), u.Scheme)
	return nil
}

// Int returns an optional integer within [min, max].
func (r *Reader) Int(name string, def, min, max int) int {
	v, ok := r.raw(name, false, "")
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.Fail(name, "expected an integer from %d to %d, got %q", min, max, v)
		return def
	}
	return n
}

// Seconds returns an optional duration given in whole seconds, at least 1.
func (r *Reader) Seconds(name string, def time.Duration) time.Duration {
	return time.Duration(r.Int(name, int(def/time.Second), 1, 86400)) * time.Second
}

// Duration returns an optional Go duration such as 500ms or 10s.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.raw(name, false, "")
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.Fail(name, "expected a positive duration such as 500ms or 10s, got %q", v)
		return def
	}
	return d
}

// DatabaseURL returns the required Postgres URL in DATABASE_URL, which every
// binary that talks to Postgres reads the same way. It is a secret because it
// carries the password; only its scheme and host are checked, and the value
// never appears in an error.
func (r *Reader) DatabaseURL() secret.Value {
	v := r.Secret("DATABASE_URL")
	if !v.Empty() {
		r.URL("DATABASE_URL", "postgres", "postgresql")
	}
	return v
}

// DefaultShutdownGrace is how long a service may drain after SIGTERM unless
// its *_SHUTDOWN_GRACE says otherwise. Kubernetes sends SIGKILL 30 s after
// SIGTERM by default, so the drain ends first.
const DefaultShutdownGrace = 20 * time.Second

// ShutdownGrace returns an optional shutdown grace (a Go duration), by
// default DefaultShutdownGrace.
func (r *Reader) ShutdownGrace(name string) time.Duration {
	return r.Duration(name, DefaultShutdownGrace)
}

// Region returns a required region name of 1 to 50 characters.
func (r *Reader) Region(name string) string {
	v := r.String(name)
	if v != "" && len(v) > 50 {
		r.Fail(name, "expected 1 to 50 characters, got %d", len(v))
	}
	return v
}
