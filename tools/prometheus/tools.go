//go:build tools

// Package tools pins Prometheus for the node's Prometheus image (mk/tools.mk,
// internal/node/images): Debian's prometheus (2.42) is built without
// Kubernetes service discovery, which the stack's Prometheus configuration
// uses for every job. v0.307.3 is the module version of Prometheus v3.7.3,
// the release the manifests pin.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
