// Package classify turns what a probe saw into a verdict people can act on:
// an error class, its likely cause and the next command to run. Library
// errors are recognised by their codes (SQLSTATE, Redis error prefixes, gRPC
// codes, OAuth2 error codes, Prometheus lastError); probes report semantic
// failures as Findings that name their class directly.
package classify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Finding is a failure a probe recognised itself (AOF off, a stale MC...).
// Vars fill placeholders of its next command that only the probe knows
// (the namespace, workload, pod and container of a Kubernetes finding).
type Finding struct {
	Class Class
	Msg   string
	Vars  map[string]string
}

func (f *Finding) Error() string { return f.Msg }

// Failf reports a finding of class.
func Failf(class Class, format string, a ...any) error {
	return &Finding{Class: class, Msg: fmt.Sprintf(format, a...)}
}

// FailVars reports a finding of class with placeholders for its next command.
func FailVars(class Class, vars map[string]string, format string, a ...any) error {
	return &Finding{Class: class, Msg: fmt.Sprintf(format, a...), Vars: vars}
}

// WithVars attaches next-command placeholders to an error some library
// returned (a Kubernetes API error names no namespace the command could use).
func WithVars(err error, vars map[string]string) error {
	if err == nil {
		return nil
	}
	return &varsError{err: err, vars: vars}
}

type varsError struct {
	err  error
	vars map[string]string
}

func (e *varsError) Error() string { return e.err.Error() }
func (e *varsError) Unwrap() error { return e.err }

// TargetError says which target of a check an error came from.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// At wraps err with the target it concerns.
func At(target string, err error) error {
	if err == nil {
		return nil
	}
	return &TargetError{Target: target, Err: err}
}

// Info fills the placeholders of a next command.
type Info struct {
	Check string
	Mode  string            // local or cluster
	Vars  map[string]string // e.g. "ref": "$REDIS_PASSWORD"
}

// Verdict is the judgement on one failure: its class, likely cause and next
// command.
type Verdict struct {
	ID       Class  `json:"id"`
	Cause    string `json:"cause"`
	Next     string `json:"next"`
	Definite bool   `json:"definite"`
}

// Classify names the class of err for a check.
func Classify(err error, info Info) Verdict {
	if err == nil {
		return Verdict{}
	}
	id := classID(err)
	e, ok := table[id]
	if !ok {
		e = table[Unknown]
	}
	next := e.local
	if info.Mode == "cluster" && e.cluster != "" {
		next = e.cluster
	}
	if next == "" {
		next = defaultNext(info)
	}
	return Verdict{ID: id, Cause: fill(e.cause, err, info), Next: fill(next, err, info), Definite: e.definite}
}

// classID recognises err, most specific first.
func classID(err error) Class {
	var f *Finding
	if errors.As(err, &f) {
		return f.Class
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return PostgresWrongPassword
		case "28000":
			return PostgresNotAuthorized
		case "3D000":
			return PostgresDatabaseMissing
		case "57P03":
			return PostgresStarting
		case "53300":
			return PostgresTooManyConnections
		case "42P01":
			return PostgresSchemaMissing
		case "25006":
			return PostgresReadOnlyViolation
		}
		return PostgresError
	}
	if id := kubeClass(err); id != "" {
		return id
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"):
			return RedisWrongPassword
		case strings.HasPrefix(msg, "NOAUTH"):
			return RedisNoAuth
		case strings.HasPrefix(msg, "LOADING"):
			return RedisLoading
		case strings.HasPrefix(msg, "MISCONF"):
			return RedisMisconf
		case strings.Contains(msg, "without any password configured"):
			return RedisNoPasswordConfigured
		}
		return RedisError
	}
	var oerr *oauth2.RetrieveError
	if errors.As(err, &oerr) {
		switch {
		case oerr.ErrorCode == "invalid_client":
			return ACInvalidClient
		case oerr.ErrorCode == "unauthorized_client", oerr.ErrorCode == "invalid_scope":
			return ACClientNotAllowed
		case oerr.Response != nil && oerr.Response.StatusCode >= 500:
			return ACServerError
		}
		return ACTokenRefused
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK && s.Code() != codes.Unknown {
		switch s.Code() {
		case codes.Unavailable:
			if strings.Contains(s.Message(), "connection refused") {
				return NetRefused
			}
			if strings.Contains(s.Message(), "no such host") {
				return NetDNS
			}
			return GRPCUnavailable
		case codes.Unauthenticated:
			return GRPCUnauthenticated
		case codes.PermissionDenied:
			return GRPCPermissionDenied
		case codes.Unimplemented:
			return GRPCUnimplemented
		case codes.DeadlineExceeded:
			return NetTimeout
		}
		return GRPCError
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
		return NetRefused
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return NetDNS
	}
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()) {
		return NetTimeout
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return NetReset
	}
	return Unknown
}

// kubeClass recognises an answer of the Kubernetes API.
func kubeClass(err error) Class {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return ""
	}
	switch {
	case apierrors.IsUnauthorized(err):
		return K8sUnauthorized
	case apierrors.IsForbidden(err):
		return K8sForbidden
	case apierrors.IsNotFound(err):
		return K8sNotFound
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err), apierrors.IsServiceUnavailable(err):
		return K8sAPIBusy
	}
	return K8sAPIError
}

// ScrapeClass classifies a Prometheus target's lastError.
func ScrapeClass(lastError string) Class {
	switch {
	case strings.Contains(lastError, "connection refused"):
		return PrometheusTargetRefused
	case strings.Contains(lastError, "deadline exceeded"), strings.Contains(lastError, "timeout"):
		return PrometheusTargetTimeout
	case strings.Contains(lastError, "no such host"):
		return PrometheusTargetDNS
	case strings.Contains(lastError, "server returned HTTP status"):
		return PrometheusTargetHTTP
	}
	return PrometheusTargetDown
}

func fill(next string, err error, info Info) string {
	target := ""
	var te *TargetError
	if errors.As(err, &te) {
		target = te.Target
	}
	host, port := target, ""
	if h, p, e := net.SplitHostPort(trimScheme(target)); e == nil {
		host, port = h, p
	}
	pairs := []string{"{target}", target, "{host}", host, "{port}", port, "{check}", info.Check}
	for k, v := range info.Vars {
		pairs = append(pairs, "{"+k+"}", v)
	}
	// Prepended: strings.Replacer prefers the earliest pair, so the values
	// of the failure itself win over the check's.
	var own []string
	var f *Finding
	if errors.As(err, &f) {
		for k, v := range f.Vars {
			own = append(own, "{"+k+"}", v)
		}
	}
	var ve *varsError
	if errors.As(err, &ve) {
		for k, v := range ve.vars {
			own = append(own, "{"+k+"}", v)
		}
	}
	pairs = append(own, pairs...)
	return strings.NewReplacer(pairs...).Replace(next)
}

func trimScheme(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func defaultNext(info Info) string {
	if info.Mode == "cluster" {
		return "kubectl -n dark-tower get pods -o wide && kubectl -n dark-tower get events --sort-by=.lastTimestamp | tail -20"
	}
	return "verifier run --output text  # then read the failing service's log"
}
