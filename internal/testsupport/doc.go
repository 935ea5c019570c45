// Package testsupport starts the real servers the tests talk to: PostgreSQL
// (initdb into a temporary directory), Redis (password from a config file,
// AOF on) and the project's own binaries, each on a free loopback port, and
// removes them when the test ends. Nothing here mocks infrastructure; a server
// that cannot start fails the test.
package testsupport
