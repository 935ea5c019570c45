// Package e2e runs the control plane as real processes (two ACs, two GCs, two
// MCs, db-migrate) against real PostgreSQL and Redis, and tests it across
// process boundaries. Its tests live in stack_test.go.
package e2e
