//go:build tools

// Package tools pins the CNCF Distribution registry: the node's local image
// registry on 127.0.0.1 (mk/node.mk), which Skaffold pushes to and containerd
// pulls from over plain HTTP, since no public registry can be reached here.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
