// Package infracheck holds tests (no code) that hold the Kubernetes manifests to the real
// binaries: every variable a binary requires is set by its manifest, every probe path and
// declared port is served by the binary started with the manifest's own environment.
//
// They live in the main module because they start the services with internal/testsupport;
// the checks against Kubernetes itself (a real kube-apiserver, cyclonus, Skaffold) live in the
// tools/validate module. Both read the manifests through internal/manifest, rendered with the
// pinned bin/kubectl (`make bin/kubectl`, a prerequisite of `make test`); a missing kubectl
// fails the tests.
package infracheck
