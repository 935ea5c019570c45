package observability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/darktower/devstack/internal/manifest"
)

const (
	obsNS = "dark-tower-observability"
	appNS = "dark-tower"
)

// resource is one Kubernetes object with the file it came from.
type resource struct {
	file string
	obj  *unstructured.Unstructured
}

func (r resource) kind() string { return r.obj.GetKind() }
func (r resource) name() string { return r.obj.GetName() }
func (r resource) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", r.kind(), r.obj.GetNamespace(), r.name(), r.file)
}

// workload is the object as a workload (its pod template typed), ok false for other kinds.
func (r resource) workload(t *testing.T) (manifest.Workload, bool) {
	t.Helper()
	w, ok, err := manifest.WorkloadOf(r.obj)
	if err != nil {
		t.Fatalf("%s: %v", r.file, err)
	}
	return w, ok
}

// loadManifests reads every resource the kustomization lists.
func loadManifests(t *testing.T) []resource {
	t.Helper()
	k := loadDoc(t, "kustomization.yaml")
	if ns := str(k, "namespace"); ns != "" {
		t.Errorf("kustomization sets namespace %q: it would move the Roles out of %s", ns, appNS)
	}
	var out []resource
	for _, r := range strs(k, "resources") {
		for _, o := range loadObjects(t, r) {
			out = append(out, resource{r, o})
		}
	}
	// Every YAML file in the tree is listed (nothing glob-applied by
	// accident, nothing forgotten), except configuration and patches.
	listed := map[string]bool{}
	for _, r := range strs(k, "resources") {
		listed[r] = true
	}
	for _, dir := range []string{"prometheus", "grafana", "loki", "alloy", "network"} {
		for _, f := range globBase(t, filepath.Join(dir, "*.yaml")) {
			p := dir + "/" + f
			if !listed[p] && p != promConfig && p != "loki/loki.yaml" {
				t.Errorf("%s is neither a listed resource nor known configuration", p)
			}
		}
	}
	return out
}

func loadExporterPatches(t *testing.T) []resource {
	t.Helper()
	comp := loadDoc(t, "exporters/kustomization.yaml")
	var paths []string
	for _, p := range list(comp, "patches") {
		paths = append(paths, str(p, "path"))
	}
	if str(comp, "kind") != "Component" || !equalSets(paths, []string{"redis-exporter.yaml", "postgres-exporter.yaml"}) {
		t.Errorf("exporters/kustomization.yaml: want a Component patching with both exporter files, got %s %v", str(comp, "kind"), paths)
	}
	var out []resource
	for _, f := range paths {
		for _, o := range loadObjects(t, "exporters/"+f) {
			out = append(out, resource{"exporters/" + f, o})
		}
	}
	if len(out) != 2 {
		t.Fatalf("want the redis and postgres exporter patches, got %d documents", len(out))
	}
	return out
}

var digestRE = regexp.MustCompile(`^[a-z0-9._\-/]+:[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$`)

// allContainers lists a pod's containers, then its init containers.
func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container{}, spec.Containers...), spec.InitContainers...)
}

func isTrue(b *bool) bool { return b != nil && *b }

// show prints an optional number as the manifest gives it, <nil> when absent.
func show(p *int64) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// TestImagesPinned: every image has a tag and a sha256 digest, never latest.
func TestImagesPinned(t *testing.T) {
	all := append(loadManifests(t), loadExporterPatches(t)...)
	n := 0
	for _, m := range all {
		w, ok := m.workload(t)
		if !ok {
			continue
		}
		for _, c := range allContainers(w.Template.Spec) {
			n++
			if !digestRE.MatchString(c.Image) || strings.Contains(c.Image, ":latest") {
				t.Errorf("%s container %s: image %q is not pinned as name:tag@sha256:digest", m, c.Name, c.Image)
			}
		}
	}
	if n < 6 {
		t.Errorf("found %d containers, want at least 6 (prometheus, grafana, loki, alloy, two exporters)", n)
	}
}

// TestPodSecurityRestricted: every pod (and the exporter containers) meets
// Pod Security "restricted": non-root with a numeric user, RuntimeDefault
// seccomp, no privilege escalation, all capabilities dropped, no host
// namespaces, ports or paths.
func TestPodSecurityRestricted(t *testing.T) {
	for _, m := range append(loadManifests(t), loadExporterPatches(t)...) {
		w, ok := m.workload(t)
		if !ok {
			continue
		}
		spec := w.Template.Spec
		patch := strings.HasPrefix(m.file, "exporters/")
		psc := spec.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		for _, h := range []struct {
			name string
			on   bool
		}{{"hostNetwork", spec.HostNetwork}, {"hostPID", spec.HostPID}, {"hostIPC", spec.HostIPC}} {
			if h.on {
				t.Errorf("%s: %s", m, h.name)
			}
		}
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("%s: hostPath volume %s", m, v.Name)
			}
		}
		if !patch {
			if !isTrue(psc.RunAsNonRoot) {
				t.Errorf("%s: pod runAsNonRoot is not true", m)
			}
			if psc.RunAsUser == nil || *psc.RunAsUser <= 0 {
				t.Errorf("%s: pod runAsUser %s: want a numeric non-root user", m, show(psc.RunAsUser))
			}
		}
		for _, c := range allContainers(spec) {
			name := c.Name
			csc := c.SecurityContext
			if csc == nil {
				csc = &corev1.SecurityContext{}
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Errorf("%s container %s: allowPrivilegeEscalation must be false", m, name)
			}
			if isTrue(csc.Privileged) {
				t.Errorf("%s container %s: privileged", m, name)
			}
			var drop, add []string
			if caps := csc.Capabilities; caps != nil {
				for _, c := range caps.Drop {
					drop = append(drop, string(c))
				}
				for _, c := range caps.Add {
					add = append(add, string(c))
				}
			}
			if !equalSets(drop, []string{"ALL"}) || len(add) > 0 {
				t.Errorf("%s container %s: capabilities must drop ALL and add none", m, name)
			}
			var seccomp corev1.SeccompProfileType
			if csc.SeccompProfile != nil {
				seccomp = csc.SeccompProfile.Type
			}
			if seccomp == "" && psc.SeccompProfile != nil {
				seccomp = psc.SeccompProfile.Type
			}
			if seccomp != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s container %s: seccompProfile %q, want RuntimeDefault", m, name, seccomp)
			}
			if patch {
				// A sidecar cannot rely on the pod's settings it does not own.
				if !isTrue(csc.RunAsNonRoot) {
					t.Errorf("%s container %s: runAsNonRoot is not true", m, name)
				}
				if csc.RunAsUser == nil || *csc.RunAsUser <= 0 {
					t.Errorf("%s container %s: runAsUser %s: want numeric non-root", m, name, show(csc.RunAsUser))
				}
			}
			if !isTrue(csc.ReadOnlyRootFilesystem) {
				t.Errorf("%s container %s: readOnlyRootFilesystem is not true", m, name)
			}
			for _, p := range c.Ports {
				if p.HostPort != 0 {
					t.Errorf("%s container %s: hostPort", m, name)
				}
			}
			_, memLimit := c.Resources.Limits[corev1.ResourceMemory]
			_, cpuRequest := c.Resources.Requests[corev1.ResourceCPU]
			if !memLimit || !cpuRequest {
				t.Errorf("%s container %s: needs CPU requests and memory limits", m, name)
			}
		}
	}
}

// TestLabelsAndNamespaces: every object carries the three labels, selectors
// use only name (+ part-of), everything lives in the observability
// namespace except the discovery Roles in dark-tower; nothing is
// cluster-scoped.
func TestLabelsAndNamespaces(t *testing.T) {
	for _, m := range loadManifests(t) {
		labels := m.obj.GetLabels()
		_, name := labels["app.kubernetes.io/name"]
		_, component := labels["app.kubernetes.io/component"]
		if !name || !component || labels["app.kubernetes.io/part-of"] != "dark-tower" {
			t.Errorf("%s: labels %v lack name, component or part-of=dark-tower", m, labels)
		}
		ns := m.obj.GetNamespace()
		switch m.kind() {
		case "Role", "RoleBinding":
			if ns != appNS {
				t.Errorf("%s: discovery Roles belong in %s", m, appNS)
			}
		case "ClusterRole", "ClusterRoleBinding", "Namespace":
			t.Errorf("%s: cluster-scoped objects are not allowed here", m)
		default:
			if ns != obsNS {
				t.Errorf("%s: namespace %q, want %s", m, ns, obsNS)
			}
		}
		if w, ok := m.workload(t); ok {
			var sel map[string]string
			if w.LabelSelector != nil {
				sel = w.LabelSelector.MatchLabels
			}
			keys := sortedKeys(sel)
			if !equalSets(keys, []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of"}) {
				t.Errorf("%s: selector keys %v, want name and part-of only", m, keys)
			}
			tl := w.Template.Labels
			for k, v := range sel {
				if tl[k] != v {
					t.Errorf("%s: template label %s=%v does not match selector %v", m, k, tl[k], v)
				}
			}
		}
		if m.kind() == "Service" {
			var svc corev1.Service
			typed(t, m.obj, &svc)
			if sel := svc.Spec.Selector; !equalSets(sortedKeys(sel), []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of"}) {
				t.Errorf("%s: selector %v, want name and part-of only", m, sel)
			}
		}
	}
}

// TestRBACLeastPrivilege: Prometheus may get/list/watch pods, services,
// endpoints and endpointslices in dark-tower; Alloy may read pods and their
// logs there. Nothing else.
func TestRBACLeastPrivilege(t *testing.T) {
	want := map[string][]string{
		"prometheus-discovery": {"/endpoints:get,list,watch", "/pods:get,list,watch", "/services:get,list,watch", "discovery.k8s.io/endpointslices:get,list,watch"},
		"alloy-logs":           {"/pods/log:get", "/pods:get,list,watch"},
	}
	wantSA := map[string]string{"prometheus-discovery": "prometheus", "alloy-logs": "alloy"}
	roles := map[string][]string{}
	bound := map[string]string{}
	for _, m := range loadManifests(t) {
		switch m.kind() {
		case "Role":
			var role rbacv1.Role
			typed(t, m.obj, &role)
			var rules []string
			for _, r := range role.Rules {
				verbs := append([]string{}, r.Verbs...)
				sort.Strings(verbs)
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						rules = append(rules, g+"/"+res+":"+strings.Join(verbs, ","))
					}
				}
				if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
					t.Errorf("%s: unexpected rule %+v", m, r)
				}
			}
			sort.Strings(rules)
			roles[m.name()] = rules
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			typed(t, m.obj, &rb)
			subj := rb.Subjects
			if rb.RoleRef.Kind != "Role" || len(subj) != 1 || subj[0].Kind != "ServiceAccount" || subj[0].Namespace != obsNS {
				t.Errorf("%s: want one ServiceAccount of %s bound to a Role", m, obsNS)
				continue
			}
			bound[rb.RoleRef.Name] = subj[0].Name
		}
	}
	for role, w := range want {
		if strings.Join(roles[role], " ") != strings.Join(w, " ") {
			t.Errorf("Role %s grants %v, want %v", role, roles[role], w)
		}
		if bound[role] != wantSA[role] {
			t.Errorf("Role %s is bound to %q, want ServiceAccount %s", role, bound[role], wantSA[role])
		}
	}
	if len(roles) != len(want) {
		t.Errorf("Roles %v, want exactly %v", sortedKeys(roles), sortedKeys(want))
	}
}

// policyPorts flattens a NetworkPolicy's egress or ingress rules to
// "peer:port/proto" strings, peer being ns=..., pod=..., ns=...+pod=... or *.
func policyPorts(np networkingv1.NetworkPolicy, dir string) []string {
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if dir == "ingress" {
		for _, r := range np.Spec.Ingress {
			rules = append(rules, rule{r.From, r.Ports})
		}
	} else {
		for _, r := range np.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
	}
	var out []string
	for _, r := range rules {
		peers := []string{"*"}
		if len(r.peers) > 0 {
			peers = nil
			for _, p := range r.peers {
				var parts []string
				if p.NamespaceSelector != nil {
					if ns := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; ns != "" {
						parts = append(parts, "ns="+ns)
					}
				}
				if p.PodSelector != nil {
					if app := p.PodSelector.MatchLabels["app.kubernetes.io/name"]; app != "" {
						parts = append(parts, "pod="+app)
					}
					if app := p.PodSelector.MatchLabels["k8s-app"]; app != "" {
						parts = append(parts, "pod="+app)
					}
				}
				peers = append(peers, strings.Join(parts, "+"))
			}
		}
		for _, peer := range peers {
			for _, p := range r.ports {
				port, proto := "<nil>", ""
				if p.Port != nil {
					port = p.Port.String()
				}
				if p.Protocol != nil {
					proto = string(*p.Protocol)
				}
				out = append(out, fmt.Sprintf("%s:%s/%s", peer, port, proto))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestNetworkPolicies: default deny plus DNS, then exactly the flows the
// design needs: Prometheus to the metrics ports of SPEC section 7 and
// infra.md (and the API server), Grafana to Prometheus and Loki, Alloy to
// Loki and the API server.
func TestNetworkPolicies(t *testing.T) {
	egress := map[string][]string{}
	ingress := map[string][]string{}
	var denyAll, dns bool
	for _, m := range loadManifests(t) {
		if m.kind() != "NetworkPolicy" {
			continue
		}
		var np networkingv1.NetworkPolicy
		typed(t, m.obj, &np)
		sel := np.Spec.PodSelector.MatchLabels
		var types []string
		for _, pt := range np.Spec.PolicyTypes {
			types = append(types, string(pt))
		}
		switch {
		case len(sel) == 0 && m.name() == "default-deny":
			denyAll = equalSets(types, []string{"Ingress", "Egress"}) && np.Spec.Ingress == nil && np.Spec.Egress == nil
		case len(sel) == 0 && m.name() == "allow-dns":
			dns = strings.Join(policyPorts(np, "egress"), " ") == "ns=kube-system+pod=kube-dns:53/TCP ns=kube-system+pod=kube-dns:53/UDP"
		case len(sel) == 1:
			app := sel["app.kubernetes.io/name"]
			if !equalSets(types, []string{"Ingress", "Egress"}) {
				t.Errorf("%s: policyTypes %v, want both", m, types)
			}
			egress[app] = policyPorts(np, "egress")
			ingress[app] = policyPorts(np, "ingress")
		default:
			t.Errorf("%s: unexpected selector %v", m, sel)
		}
	}
	if !denyAll {
		t.Error("no default-deny policy for ingress and egress of every pod")
	}
	if !dns {
		t.Error("no allow-dns policy to kube-dns on UDP and TCP 53")
	}
	api := []string{"*:443/TCP", "*:6443/TCP"}
	scrape := []string{"ns=dark-tower:8080/TCP", "ns=dark-tower:8081/TCP", "ns=dark-tower:8082/TCP",
		"ns=dark-tower:8090/TCP", "ns=dark-tower:9121/TCP", "ns=dark-tower:9187/TCP"}
	wantEgress := map[string][]string{
		"prometheus": append(append([]string{}, api...), scrape...),
		"grafana":    {"pod=loki:3100/TCP", "pod=prometheus:9090/TCP"},
		"loki":       nil,
		"alloy":      append([]string{"pod=loki:3100/TCP"}, api...),
	}
	wantIngress := map[string][]string{
		"prometheus": {"*:9090/TCP"},
		"grafana":    {"*:3000/TCP"},
		"loki":       {"*:3100/TCP"},
		"alloy":      nil,
	}
	for app, w := range wantEgress {
		if !equalSets(egress[app], w) {
			t.Errorf("%s egress %v, want %v", app, egress[app], w)
		}
	}
	for app, w := range wantIngress {
		if !equalSets(ingress[app], w) {
			t.Errorf("%s ingress %v, want %v", app, ingress[app], w)
		}
	}
	if len(egress) != len(wantEgress) {
		t.Errorf("policies for %v, want %v", sortedKeys(egress), sortedKeys(wantEgress))
	}
}

// TestServicesAndProbes: NodePorts of infra.md; every Service targets a
// named container port that exists; probes use named ports.
func TestServicesAndProbes(t *testing.T) {
	all := loadManifests(t)
	ports := map[string]map[string]int{} // app -> port name -> number
	for _, m := range all {
		w, ok := m.workload(t)
		if !ok {
			continue
		}
		app := m.obj.GetLabels()["app.kubernetes.io/name"]
		ports[app] = map[string]int{}
		for _, c := range w.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[app][p.Name] = int(p.ContainerPort)
			}
			for _, probe := range []struct {
				name string
				p    *corev1.Probe
			}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
				if probe.p == nil || probe.p.HTTPGet == nil || probe.p.HTTPGet.Port == (intstr.IntOrString{}) {
					continue
				}
				if pp := probe.p.HTTPGet.Port; pp.Type != intstr.String || ports[app][pp.StrVal] == 0 {
					t.Errorf("%s %s: port %s is not a named container port", m, probe.name, pp.String())
				}
			}
		}
	}
	wantNodePort := map[string]int{"prometheus": 30090, "grafana": 30030, "loki": 30100}
	for _, m := range all {
		if m.kind() != "Service" {
			continue
		}
		var svc corev1.Service
		typed(t, m.obj, &svc)
		app := svc.Spec.Selector["app.kubernetes.io/name"]
		for _, p := range svc.Spec.Ports {
			tp := ""
			if p.TargetPort.Type == intstr.String {
				tp = p.TargetPort.StrVal
			}
			if ports[app][tp] == 0 {
				t.Errorf("%s: targetPort %s is not a named port of %s", m, p.TargetPort.String(), app)
			}
			if np := int(p.NodePort); np != 0 && np != wantNodePort[app] {
				t.Errorf("%s: nodePort %d, want %d", m, np, wantNodePort[app])
			}
			if svc.Spec.Type == corev1.ServiceTypeNodePort && p.NodePort == 0 {
				t.Errorf("%s: NodePort Service without a fixed nodePort", m)
			}
		}
	}
	want := map[string]int{"prometheus": 9090, "grafana": 3000, "loki": 3100}
	for app, p := range want {
		if ports[app]["web"] != p && ports[app]["http"] != p {
			t.Errorf("%s does not listen on %d (ports %v)", app, p, ports[app])
		}
	}
}

// TestExporterPatches: each sidecar exposes a port named "metrics" on the
// exporter's port, takes its password from the existing Secret through the
// environment and never as an argument.
func TestExporterPatches(t *testing.T) {
	want := map[string]struct {
		port          int
		secretEnv     string
		secret, key   string
		containerName string
	}{
		"redis":    {9121, "REDIS_PASSWORD", "redis-credentials", "REDIS_PASSWORD", "redis-exporter"},
		"postgres": {9187, "DATA_SOURCE_PASS", "postgres-credentials", "POSTGRES_PASSWORD", "postgres-exporter"},
	}
	for _, m := range loadExporterPatches(t) {
		w, ok := want[m.name()]
		if !ok || m.kind() != "StatefulSet" || m.obj.GetNamespace() != appNS {
			t.Errorf("%s: want a patch of StatefulSet redis or postgres in %s", m, appNS)
			continue
		}
		sts, _ := m.workload(t)
		cs := sts.Template.Spec.Containers
		if len(cs) != 1 || cs[0].Name != w.containerName {
			t.Errorf("%s: want exactly the %s container", m, w.containerName)
			continue
		}
		c := cs[0]
		var metrics int
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				metrics = int(p.ContainerPort)
			}
		}
		if metrics != w.port {
			t.Errorf("%s: port metrics = %d, want %d", m, metrics, w.port)
		}
		if a := sts.Template.Annotations["prometheus.io/port"]; a != fmt.Sprint(w.port) {
			t.Errorf("%s: prometheus.io/port annotation %q, want %d", m, a, w.port)
		}
		var fromSecret bool
		for _, e := range c.Env {
			if e.Name == w.secretEnv {
				var ref *corev1.SecretKeySelector
				if e.ValueFrom != nil {
					ref = e.ValueFrom.SecretKeyRef
				}
				fromSecret = ref != nil && ref.Name == w.secret && ref.Key == w.key
			}
			if v := strings.ToLower(e.Value); strings.Contains(v, "password") || strings.Contains(v, "@") {
				t.Errorf("%s: env %s carries a credential literally", m, e.Name)
			}
		}
		if !fromSecret {
			t.Errorf("%s: %s must come from Secret %s key %s", m, w.secretEnv, w.secret, w.key)
		}
		for _, a := range append(append([]string{}, c.Args...), c.Command...) {
			if strings.Contains(strings.ToLower(a), "pass") {
				t.Errorf("%s: argument %q names a password", m, a)
			}
		}
	}
}

// TestKustomizationFilesExist: every file the kustomization names exists,
// and the Prometheus Pod mounts every rule file the ConfigMap holds.
func TestKustomizationFilesExist(t *testing.T) {
	k := loadDoc(t, "kustomization.yaml")
	var files []string
	files = append(files, strs(k, "resources")...)
	var ruleKeys []string
	for _, g := range list(k, "configMapGenerator") {
		for _, f := range strs(g, "files") {
			if i := strings.Index(f, "="); i >= 0 {
				f = f[i+1:]
			}
			files = append(files, f)
			if str(g, "name") == "prometheus-rules" {
				ruleKeys = append(ruleKeys, filepath.Base(f))
			}
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("kustomization names %s: %v", f, err)
		}
	}
	if !equalSets(ruleKeys, globBase(t, filepath.Join(rulesDir, "*.yaml"))) {
		t.Errorf("prometheus-rules holds %v, rules are %v", ruleKeys, globBase(t, filepath.Join(rulesDir, "*.yaml")))
	}
	var mounted []string
	for _, v := range podVolumes(t, "prometheus/deployment.yaml") {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ConfigMap == nil || s.ConfigMap.Name != "prometheus-rules" {
				continue
			}
			for _, it := range s.ConfigMap.Items {
				if it.Path != "rules/"+it.Key {
					t.Errorf("rule %s mounted at %s, want rules/%s", it.Key, it.Path, it.Key)
				}
				mounted = append(mounted, it.Key)
			}
		}
	}
	if !equalSets(mounted, ruleKeys) {
		t.Errorf("Prometheus mounts rules %v, ConfigMap holds %v", mounted, ruleKeys)
	}
}
