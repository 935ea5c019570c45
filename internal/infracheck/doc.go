// Package infracheck holds tests (no code) that hold the Kubernetes manifests to the real
// binaries: every variable a binary requires is set by its manifest, every probe path and
// declared port is served by the binary started with the manifest's own environment.
//
// They live in the main module because they start the services with internal/testsupport;
// everything that needs Kubernetes' own libraries lives in the tools/validate module. The
// manifests are rendered with the pinned bin/kubectl (`make bin/kubectl`, a prerequisite of
// `make test`); a missing kubectl fails the tests.
package infracheck
