//go:build tools

// Package tools pins the kube-apiserver command so `go mod tidy` keeps what building it needs.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
