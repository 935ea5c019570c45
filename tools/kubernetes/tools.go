//go:build tools

// Package tools pins the Kubernetes commands built from this module (mk/tools.mk): kubectl and
// kube-apiserver for validation, and the node's control plane and kubelet (mk/node.mk), all at
// the Kind node image's version so one build serves all of them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
