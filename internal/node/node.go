// Package node runs a single-node Kubernetes cluster whose components are host
// processes on this machine: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd with runc and the CNI bridge, kubelet,
// kube-proxy, kube-router's NetworkPolicy firewall, CoreDNS, a local image
// registry and a Docker engine for Skaffold's builds. It is what CI and Linux
// hosts without Docker Desktop or Docker Hub deploy the stack to with Skaffold
// (docs/kind.md, "The node").
//
// Everything it writes lives in one state directory; everything it changes
// outside it (sysctls, iptables, network namespaces, the bridge, mounts) is
// recorded there and undone by Down.
package node

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/darktower/devstack/internal/procs"
)

// The cluster's fixed facts, the same as the Kind cluster's where the
// manifests depend on them (kind/kind-config.yaml: pod and Service ranges).
const (
	NodeName    = "dark-tower-node"
	ContextName = "dark-tower-node"
	PodCIDR     = "10.244.0.0/16"
	// The node's own share of PodCIDR, as the node IPAM controller allocates
	// the first node's; the CNI configuration hands out addresses from it.
	NodePodCIDR  = "10.244.0.0/24"
	PodGateway   = "10.244.0.1"
	ServiceCIDR  = "10.96.0.0/16"
	APIServiceIP = "10.96.0.1"
	DNSServiceIP = "10.96.0.10"
	// Bridge is the pods' bridge; nothing routes its addresses off the machine.
	Bridge = "dtnode0"
	// Registry is the local image registry Skaffold pushes to and containerd
	// and the Docker engine pull from, as in Kind's local-registry setup.
	Registry = "127.0.0.1:5001"
	// APIPort is the API server's port on the node IP.
	APIPort = 6443
	// etcd's ports, away from 2379/2380 so a distribution's etcd service can
	// keep its own.
	etcdClientURL = "http://127.0.0.1:12379"
	etcdPeerURL   = "http://127.0.0.1:12380"
)

// Node is a node rooted at a state directory.
type Node struct {
	Dir   string // state directory
	Bin   string // the repository's bin/ (pinned Kubernetes commands, registry, kube-router, coredns)
	Cache string // version-keyed cache outside the checkout: image root filesystems, registry storage
	IP    string // the node's address: the host's primary IPv4 address
	Out   io.Writer
}

// New resolves the node's address and paths. dir, bin and cache become absolute.
func New(dir, bin, cache string, out io.Writer) (*Node, error) {
	n := &Node{Out: out}
	var err error
	for _, p := range []struct {
		dst *string
		src string
	}{{&n.Dir, dir}, {&n.Bin, bin}, {&n.Cache, cache}} {
		if *p.dst, err = filepath.Abs(p.src); err != nil {
			return nil, err
		}
	}
	if n.IP, err = primaryIPv4(); err != nil {
		return nil, err
	}
	return n, nil
}

// primaryIPv4 is the source address the host uses for its default route: the
// API server advertises it and the kubelet registers with it, like a Kind
// node's address on its Docker network. Connecting a UDP socket sends nothing.
func primaryIPv4() (string, error) {
	c, err := net.Dial("udp4", "203.0.113.1:9") // TEST-NET-3: only the route lookup matters
	if err != nil {
		return "", fmt.Errorf("node: no IPv4 default route to take the node's address from: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

func (n *Node) path(elem ...string) string {
	return filepath.Join(append([]string{n.Dir}, elem...)...)
}

func (n *Node) bin(name string) string { return filepath.Join(n.Bin, name) }

func (n *Node) procs() procs.Dir { return procs.Dir(n.Dir) }

// Kubeconfig is the administrator's kubeconfig, context ContextName.
func (n *Node) Kubeconfig() string { return n.path("kubeconfig") }

// DockerHost is the Docker engine's socket, for DOCKER_HOST.
func (n *Node) DockerHost() string { return "unix://" + n.path("docker", "docker.sock") }

func (n *Node) logf(format string, a ...any) { fmt.Fprintf(n.Out, "node: "+format+"\n", a...) }

// writeFile writes content unless the file already holds it: kube-proxy
// exits when its configuration file is rewritten, even with the same bytes.
func writeFile(path, content string, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), mode)
}
