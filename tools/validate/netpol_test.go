package validate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/darktower/devstack/internal/manifest"
)

// Namespaces of SPEC section 2.
const (
	NS    = "dark-tower"
	ObsNS = "dark-tower-observability"
)

// dest is a column of SPEC section 7's table: a component's port.
type dest struct {
	component string
	port      int32
	proto     corev1.Protocol
}

func (d dest) String() string { return fmt.Sprintf("%s %d/%s", d.component, d.port, d.proto) }

var (
	acHTTP    = dest{"ac-service", 8082, corev1.ProtocolTCP}
	gcHTTP    = dest{"global-controller", 8080, corev1.ProtocolTCP}
	gcGRPC    = dest{"global-controller", 50051, corev1.ProtocolTCP}
	mcGRPC    = dest{"meeting-controller", 50052, corev1.ProtocolTCP}
	mcHealth  = dest{"meeting-controller", 8081, corev1.ProtocolTCP}
	mcWT      = dest{"meeting-controller", 4433, corev1.ProtocolUDP}
	redisPort = dest{"redis", 6379, corev1.ProtocolTCP}
	pgPort    = dest{"postgres", 5432, corev1.ProtocolTCP}
	// "exporter only": the exporter sidecars' metrics ports (docs/notes infra contract).
	redisExporter = dest{"redis", 9121, corev1.ProtocolTCP}
	pgExporter    = dest{"postgres", 9187, corev1.ProtocolTCP}
)

var columns = []dest{acHTTP, gcHTTP, gcGRPC, mcGRPC, mcHealth, mcWT, redisPort, pgPort, redisExporter, pgExporter}

// Sources of the table. "outside" is a host outside the cluster.
const outside = "outside"

// spec7 is SPEC section 7 verbatim: 'y' allowed, 'n' denied, '-' not in the table (a component
// calling itself; not asserted). The last two columns spell out "exporter only": the exporters'
// metrics ports, open to Prometheus and, as "anything not in the table is denied", to nobody else.
var spec7 = []struct {
	from string
	row  string // one character per column, in the order of columns
}{
	//                       AC GC GC MC MC MC  R  PG Rx PGx
	//                     8082 8080 50051 50052 8081 4433 6379 5432 9121 9187
	{"global-controller", "y--ynnnynn"},
	{"meeting-controller", "yny---ynnn"},
	{"ac-service", "-nnnnnnynn"},
	{"db-migrate", "nnnnnnnynn"},
	{"verifier", "yyyyyyyynn"},
	{"prometheus", "yynnynnnyy"},
	{outside, "nynnnynnnn"},
	// Not rows of the table, so denied everywhere.
	{"redis", "nnnnnnnnnn"},
	{"postgres", "nnnnnnnnnn"},
}

// kube-dns as Kind runs it (CoreDNS).
var (
	kubeDNS = &matcher.InternalPeer{Namespace: "kube-system",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"},
		PodLabels:       map[string]string{"k8s-app": "kube-dns"}}
	otherKubeSystemPod = &matcher.InternalPeer{Namespace: "kube-system",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"},
		PodLabels:       map[string]string{"component": "kube-proxy"}}
)

// External hosts: the Docker network's gateway (where Kind's port mappings come from) and a
// documentation address standing for the internet.
var externalIPs = []string{"172.18.0.1", "203.0.113.10"}

// cluster is what cyclonus needs to evaluate traffic: the policies and the pods.
type cluster struct {
	policy   *matcher.Policy
	pods     map[string]*pod // by app.kubernetes.io/name
	nsLabels map[string]map[string]string
}

type pod struct {
	peer  *matcher.InternalPeer
	ip    string
	ports []corev1.ContainerPort
}

func buildCluster(t *testing.T, m manifest.Set) *cluster {
	t.Helper()
	c := &cluster{pods: map[string]*pod{}, nsLabels: map[string]map[string]string{}}
	for _, ns := range m.OfKind("Namespace") {
		l := map[string]string{"kubernetes.io/metadata.name": ns.GetName()} // set by the API server
		for k, v := range ns.GetLabels() {
			l[k] = v
		}
		c.nsLabels[ns.GetName()] = l
	}
	var pols []*networkingv1.NetworkPolicy
	for _, o := range m.OfKind("NetworkPolicy") {
		var np networkingv1.NetworkPolicy
		Typed(t, o, &np)
		if np.Namespace == "" {
			t.Errorf("NetworkPolicy %s has no namespace", np.Name)
		}
		pols = append(pols, &np)
	}
	c.policy = matcher.BuildNetworkPolicies(true, pols)
	for i, w := range Workloads(t, m) {
		name := w.Template.Labels["app.kubernetes.io/name"]
		if name == "" {
			t.Errorf("%s: pod template has no app.kubernetes.io/name label", w.Ref())
			continue
		}
		nsl, ok := c.nsLabels[w.Namespace]
		if !ok {
			t.Errorf("%s: namespace %q is not rendered", w.Ref(), w.Namespace)
			continue
		}
		p := c.pods[name]
		if p == nil {
			p = &pod{peer: &matcher.InternalPeer{Namespace: w.Namespace, NamespaceLabels: nsl, PodLabels: w.Template.Labels},
				ip: fmt.Sprintf("10.244.0.%d", 10+i)}
			c.pods[name] = p
		}
		for _, ct := range w.Template.Spec.Containers {
			p.ports = append(p.ports, ct.Ports...)
		}
	}
	return c
}

// allowed evaluates one connection; from/to nil means an external host at ip.
func (c *cluster) allowed(from *pod, fromIP string, to *matcher.InternalPeer, toIP string, toPorts []corev1.ContainerPort, port int32, proto corev1.Protocol) (bool, string) {
	tr := &matcher.Traffic{
		Source:       &matcher.TrafficPeer{IP: fromIP},
		Destination:  &matcher.TrafficPeer{Internal: to, IP: toIP},
		ResolvedPort: int(port),
		Protocol:     proto,
	}
	if from != nil {
		tr.Source.Internal = from.peer
	}
	for _, p := range toPorts {
		if p.ContainerPort == port && protoOf(p) == proto {
			tr.ResolvedPortName = p.Name
		}
	}
	r := c.policy.IsTrafficAllowed(tr)
	ok := r.Ingress.IsAllowed() && r.Egress.IsAllowed()
	why := fmt.Sprintf("egress allowed=%v ingress allowed=%v", r.Egress.IsAllowed(), r.Ingress.IsAllowed())
	return ok, why
}

func protoOf(p corev1.ContainerPort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// TestNetworkPolicyMatrix checks every cell of SPEC section 7 with cyclonus's evaluator over
// the rendered policies, pods labelled as the rendered pod templates label them.
func TestNetworkPolicyMatrix(t *testing.T) {
	c := buildCluster(t, InCluster(t, KindOverlay))
	need := func(name string) *pod {
		p := c.pods[name]
		if p == nil {
			t.Fatalf("no rendered workload has pods labelled app.kubernetes.io/name=%s", name)
		}
		return p
	}
	for _, d := range columns {
		dst := need(d.component)
		if !hasPort(dst.ports, d.port, d.proto) {
			t.Errorf("%s: no container port %d/%s in its pod template", d.component, d.port, d.proto)
		}
	}
	var mismatches []string
	for _, r := range spec7 {
		for i, d := range columns {
			want := r.row[i]
			if want == '-' {
				continue
			}
			dst := need(d.component)
			var sources []string
			if r.from == outside {
				sources = externalIPs
			} else {
				sources = []string{""}
			}
			for _, ip := range sources {
				var src *pod
				if r.from != outside {
					src = need(r.from)
					ip = src.ip
				}
				got, why := c.allowed(src, ip, dst.peer, dst.ip, dst.ports, d.port, d.proto)
				if got != (want == 'y') {
					mismatches = append(mismatches, fmt.Sprintf("%s (%s) -> %s: SPEC says %s, policies give %s (%s)",
						r.from, ip, d, yesNo(want == 'y'), yesNo(got), why))
				}
			}
		}
	}
	if len(mismatches) > 0 {
		t.Errorf("%d cells differ from SPEC section 7:\n%s", len(mismatches), strings.Join(mismatches, "\n"))
	}
}

// TestNetworkPolicyDNS: every pod in dark-tower reaches kube-dns on UDP and TCP 53, and nothing
// else outside the table: not another kube-system pod, not kube-dns's other ports, not the
// internet.
func TestNetworkPolicyDNS(t *testing.T) {
	m := InCluster(t, KindOverlay)
	c := buildCluster(t, m)
	n := 0
	for name, p := range c.pods {
		if p.peer.Namespace != NS {
			continue
		}
		n++
		check := func(what string, to *matcher.InternalPeer, ip string, port int32, proto corev1.Protocol, want bool) {
			got, why := c.allowed(p, p.ip, to, ip, nil, port, proto)
			if got != want {
				t.Errorf("%s -> %s %d/%s: want %s, policies give %s (%s)", name, what, port, proto, yesNo(want), yesNo(got), why)
			}
		}
		check("kube-dns", kubeDNS, "10.244.0.2", 53, corev1.ProtocolUDP, true)
		check("kube-dns", kubeDNS, "10.244.0.2", 53, corev1.ProtocolTCP, true)
		check("kube-dns metrics", kubeDNS, "10.244.0.2", 9153, corev1.ProtocolTCP, false)
		check("another kube-system pod", otherKubeSystemPod, "10.244.0.3", 53, corev1.ProtocolUDP, false)
		check("internet", nil, "8.8.8.8", 53, corev1.ProtocolUDP, false)
		check("internet", nil, "203.0.113.10", 443, corev1.ProtocolTCP, false)
	}
	if n == 0 {
		t.Fatalf("no workload renders into namespace %s", NS)
	}
	if len(c.pods) > 0 && n < 7 {
		t.Errorf("only %d components in %s; want ac-service, global-controller, meeting-controller, redis, postgres, db-migrate, verifier", n, NS)
	}
}

func hasPort(ports []corev1.ContainerPort, port int32, proto corev1.Protocol) bool {
	for _, p := range ports {
		if p.ContainerPort == port && protoOf(p) == proto {
			return true
		}
	}
	return false
}

func yesNo(b bool) string {
	if b {
		return "allowed"
	}
	return "denied"
}

// TestNetworkPolicyVerifierEgress: the in-cluster verifier's prometheus.ready and
// prometheus.targets checks (SPEC section 8) need egress to Prometheus's web port in the
// observability namespace; section 7's table has no column for it, section 8 requires it.
func TestNetworkPolicyVerifierEgress(t *testing.T) {
	c := buildCluster(t, InCluster(t, KindOverlay))
	v, p := c.pods["verifier"], c.pods["prometheus"]
	if v == nil {
		t.Fatal("no rendered verifier workload")
	}
	// The in-cluster checks (workloads ready, migration Job succeeded) read the Kubernetes API:
	// in Kind, the control-plane node's address on 6443 once the Service is translated.
	if ok, why := c.allowed(v, v.ip, nil, "172.18.0.2", nil, 6443, corev1.ProtocolTCP); !ok {
		t.Errorf("verifier -> Kubernetes API (Kind control plane 172.18.0.2:6443) denied (%s)", why)
	}
	if p == nil {
		t.Fatal("no rendered prometheus workload (the Kind overlay must include infra/observability)")
	}
	if ok, why := c.allowed(v, v.ip, p.peer, p.ip, p.ports, 9090, corev1.ProtocolTCP); !ok {
		t.Errorf("verifier -> prometheus 9090/TCP denied (%s)", why)
	}
	// And nothing else from dark-tower may reach it.
	for _, name := range []string{"ac-service", "global-controller", "meeting-controller", "redis", "postgres", "db-migrate"} {
		s := c.pods[name]
		if s == nil {
			continue // reported by the matrix test
		}
		if ok, _ := c.allowed(s, s.ip, p.peer, p.ip, p.ports, 9090, corev1.ProtocolTCP); ok {
			t.Errorf("%s -> prometheus 9090/TCP allowed; only the verifier needs it", name)
		}
	}
}
