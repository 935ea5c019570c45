//go:build tools

// Package tools pins kube-router, whose firewall (iptables + ipset) enforces
// NetworkPolicy on the node (mk/node.mk). The kernel here lacks nftables
// queueing, which kube-network-policies needs. v2.1.0 is the only version the
// module proxy serves; advisories are reported against it: fit for a
// throwaway test node on loopback, not as a recommendation for clusters.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
