package validate

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

const kindConfig = "kind/kind-config.yaml"

// Host ports SPEC section 2 and the infra contract fix for NodePorts.
var wantHostPorts = map[string]int32{
	"30090/TCP": 9090, // prometheus
	"30030/TCP": 3000, // grafana
	"30100/TCP": 3100, // loki
	"30433/UDP": 4433, // MC WebTransport
}

// loadKindConfig decodes the file exactly as Kind does (kind.x-k8s.io/v1alpha4, unknown keys
// are an error).
func loadKindConfig(t *testing.T) (*v1alpha4.Cluster, []byte) {
	t.Helper()
	raw, err := os.ReadFile(Path(t, kindConfig))
	if err != nil {
		t.Fatal(err)
	}
	var tm struct {
		Kind       string `yaml:"kind"`
		APIVersion string `yaml:"apiVersion"`
	}
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		t.Fatalf("%s: %v", kindConfig, err)
	}
	if tm.APIVersion != "kind.x-k8s.io/v1alpha4" || tm.Kind != "Cluster" {
		t.Fatalf("%s: apiVersion %q kind %q, want kind.x-k8s.io/v1alpha4 Cluster", kindConfig, tm.APIVersion, tm.Kind)
	}
	cfg := &v1alpha4.Cluster{}
	d := yaml.NewDecoder(bytes.NewReader(raw))
	d.KnownFields(true)
	if err := d.Decode(cfg); err != nil {
		t.Fatalf("%s: Kind's v1alpha4 types refuse it: %v", kindConfig, err)
	}
	return cfg, raw
}

var nodeImage = regexp.MustCompile(`^kindest/node:(v[0-9]+\.[0-9]+\.[0-9]+)@sha256:[0-9a-f]{64}$`)

// TestKindConfig: strict decode, node images pinned by digest at the Kubernetes version the
// tools are built for, port mappings that carry every NodePort the overlay renders, protocols
// in upper case (Kind refuses "udp").
func TestKindConfig(t *testing.T) {
	cfg, _ := loadKindConfig(t)
	if len(cfg.Nodes) == 0 {
		t.Fatalf("%s: no nodes", kindConfig)
	}
	k8sVersion := pinnedKubernetesVersion(t)
	mappings := map[string]v1alpha4.PortMapping{}
	for i, n := range cfg.Nodes {
		m := nodeImage.FindStringSubmatch(n.Image)
		switch {
		case n.Image == "":
			t.Errorf("%s: node %d has no image (Kind's default is not pinned)", kindConfig, i)
		case m == nil:
			t.Errorf("%s: node %d image %q is not kindest/node:<version>@sha256:<digest>", kindConfig, i, n.Image)
		case m[1] != k8sVersion:
			// The apply tests' kube-apiserver must be the node's exact version.
			t.Errorf("%s: node %d image is Kubernetes %s, the tools (mk/tools.mk KUBERNETES_VERSION) are %s", kindConfig, i, m[1], k8sVersion)
		}
		for _, pm := range n.ExtraPortMappings {
			switch pm.Protocol {
			case v1alpha4.PortMappingProtocolTCP, v1alpha4.PortMappingProtocolUDP, v1alpha4.PortMappingProtocolSCTP:
			case "":
				pm.Protocol = v1alpha4.PortMappingProtocolTCP
			default:
				t.Errorf("%s: node %d port mapping %d: protocol %q; Kind takes TCP, UDP or SCTP in upper case", kindConfig, i, pm.ContainerPort, pm.Protocol)
			}
			mappings[fmt.Sprintf("%d/%s", pm.ContainerPort, pm.Protocol)] = pm
		}
	}
	// Every NodePort the overlay renders is reachable from the host.
	m := Render(t, KindOverlay)
	nodePorts := map[string]bool{}
	for _, o := range m.OfKind("Service") {
		var svc corev1.Service
		Typed(t, o, &svc)
		for _, p := range svc.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			key := fmt.Sprintf("%d/%s", p.NodePort, protoOfService(p))
			nodePorts[key] = true
			if _, ok := mappings[key]; !ok {
				t.Errorf("Service %s/%s NodePort %s has no extraPortMapping in %s", svc.Namespace, svc.Name, key, kindConfig)
			}
		}
	}
	for key, host := range wantHostPorts {
		pm, ok := mappings[key]
		if !ok {
			t.Errorf("%s: no port mapping for NodePort %s (host %d)", kindConfig, key, host)
			continue
		}
		if pm.HostPort != host {
			t.Errorf("%s: NodePort %s maps to host port %d, want %d", kindConfig, key, pm.HostPort, host)
		}
		if !nodePorts[key] {
			t.Errorf("%s maps NodePort %s but no rendered Service uses it", kindConfig, key)
		}
	}
	if _, ok := mappings["30080/TCP"]; !ok {
		t.Errorf("%s: no port mapping for the GC HTTP NodePort 30080/TCP", kindConfig)
	}
}

func protoOfService(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

var k8sVersionLine = regexp.MustCompile(`(?m)^KUBERNETES_VERSION\s*:=\s*(v\S+)`)

// pinnedKubernetesVersion is KUBERNETES_VERSION of mk/tools.mk.
func pinnedKubernetesVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, "mk", "tools.mk"))
	if err != nil {
		t.Fatal(err)
	}
	m := k8sVersionLine.FindSubmatch(b)
	if m == nil {
		t.Fatal("mk/tools.mk has no KUBERNETES_VERSION := line")
	}
	return string(m[1])
}

// criRegistryPatch is the containerd patch that points the CRI plugin's
// registry configuration at a hosts.toml directory.
var criRegistryPatch = regexp.MustCompile(`(?m)^\s*\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\s*\n\s*config_path\s*=\s*"([^"]+)"\s*$`)

// TestKindContainerdRegistryPatch: Kind's v1alpha4 types carry the patch
// that makes the node's containerd read per-registry hosts.toml files from
// the directory `make kind-up` copies the local registry's into
// (KIND_NODE_CERTS of mk/kind.mk).
func TestKindContainerdRegistryPatch(t *testing.T) {
	cfg, _ := loadKindConfig(t)
	want := makeVar(t, "KIND_NODE_CERTS")
	var found []string
	for _, p := range cfg.ContainerdConfigPatches {
		if m := criRegistryPatch.FindStringSubmatch(p); m != nil {
			found = append(found, m[1])
		}
	}
	if len(found) != 1 || found[0] != want {
		t.Errorf("%s: containerdConfigPatches set the CRI registry config_path to %v, want exactly %q (where make kind-up copies hosts.toml); patches: %q",
			kindConfig, found, want, cfg.ContainerdConfigPatches)
	}
}
