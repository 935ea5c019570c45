//go:build tools

// Package tools pins the Skaffold command so `go mod tidy` keeps what building it needs.
package tools

import _ "github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold"
