package node

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
)

// kubeconfig is a kubeconfig for one component's token, context ContextName.
func (n *Node) kubeconfig(user, token string) (string, error) {
	ca, err := os.ReadFile(n.pki("ca.crt"))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: %[1]s
    cluster:
      server: https://%[2]s:%[3]d
      certificate-authority-data: %[4]s
users:
  - name: %[5]s
    user:
      token: %[6]s
contexts:
  - name: %[1]s
    context:
      cluster: %[1]s
      user: %[5]s
current-context: %[1]s
`, ContextName, n.IP, APIPort, base64.StdEncoding.EncodeToString(ca), user, token), nil
}

// containerdConfig is containerd's configuration (version 2, containerd 1.6).
//   - restrict_oom_score_adj: these machines lack CAP_SYS_RESOURCE, so runc
//     cannot give the pause container its oom_score_adj of -998 and fails
//     with "can't get final child's PID from pipe: EOF".
//   - SystemdCgroup = false with the kubelet's cgroupfs driver: containerd
//     1.6 lacks the CRI RuntimeConfig call, so both sides are set alike.
//   - config_path: registries are configured by hosts.toml files, the same
//     mechanism the Kind cluster uses for its local registry.
func (n *Node) containerdConfig(sandboxImage string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, n.path("containerd", "root"), n.path("containerd", "state"), n.containerdSocket(), sandboxImage,
		n.path("cni", "net.d"), n.path("containerd", "certs.d"))
}

func (n *Node) containerdSocket() string { return n.path("containerd", "containerd.sock") }

// RegistryHostsTOML is containerd's hosts.toml for a registry reached over
// plain HTTP at endpoint (e.g. http://127.0.0.1:5001): it goes in
// certs.d/<registry host:port>/hosts.toml.
func RegistryHostsTOML(endpoint string) string { return MirrorHostsTOML(endpoint, endpoint) }

// MirrorHostsTOML is containerd's hosts.toml for a registry whose pulls go
// to mirror first (plain HTTP), then to server, the registry itself.
func MirrorHostsTOML(server, mirror string) string {
	return fmt.Sprintf(`server = %q

[host.%q]
  capabilities = ["pull", "resolve"]
`, server, mirror)
}

// cniConfig is the pod network: one bridge, addresses from NodePodCIDR, and
// port mappings. No IP masquerade: pods reach each other, Services and the
// node itself, and nothing routes their addresses off the machine.
func (n *Node) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "dark-tower-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, Bridge, n.path("cni", "ipam"), NodePodCIDR, PodGateway)
}

// kubeletConfig: cgroup v1 is what these hosts have (kubelet 1.35+ refuses
// it unless failCgroupV1 is false); the API server reaches the kubelet with
// its client certificate, checked against the node's CA.
func (n *Node) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %s
authorization:
  mode: AlwaysAllow
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
serializeImagePulls: false
# A laptop's or CI machine's disk is shared with everything else: evict only
# when it is really full, and never collect the images Skaffold just pushed.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%%
  imagefs.available: 2%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
`, n.containerdSocket(), n.IP, n.pki("ca.crt"), DNSServiceIP)
}

// kubeProxyConfig: iptables mode (no IPVS in these kernels). Conntrack limits
// are left as the host has them.
func (n *Node) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, n.path("kubeconfigs", "kube-proxy"), PodCIDR, NodeName)
}

// registryConfig is the local registry's: storage in the tools cache, so base
// images survive the node being torn down and built again.
func (n *Node) registryConfig() string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: json
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, n.registryStorage(), Registry)
}

func (n *Node) registryStorage() string { return filepath.Join(n.Cache, "registry") }
