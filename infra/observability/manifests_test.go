package observability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const (
	obsNS = "dark-tower-observability"
	appNS = "dark-tower"
)

// manifest is one Kubernetes object with the file it came from.
type manifest struct {
	file string
	obj  obj
}

func (m manifest) kind() string { return str(m.obj, "kind") }
func (m manifest) name() string { return str(m.obj, "metadata", "name") }
func (m manifest) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", m.kind(), str(m.obj, "metadata", "namespace"), m.name(), m.file)
}

// loadManifests reads every resource the kustomization lists.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	k := loadDoc(t, "kustomization.yaml")
	if ns := str(k, "namespace"); ns != "" {
		t.Errorf("kustomization sets namespace %q: it would move the Roles out of %s", ns, appNS)
	}
	var out []manifest
	for _, r := range strs(k, "resources") {
		for _, d := range loadDocs(t, r) {
			out = append(out, manifest{r, d})
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

func loadExporterPatches(t *testing.T) []manifest {
	t.Helper()
	comp := loadDoc(t, "exporters/kustomization.yaml")
	var paths []string
	for _, p := range list(comp, "patches") {
		paths = append(paths, str(p, "path"))
	}
	if str(comp, "kind") != "Component" || !equalSets(paths, []string{"redis-exporter.yaml", "postgres-exporter.yaml"}) {
		t.Errorf("exporters/kustomization.yaml: want a Component patching with both exporter files, got %s %v", str(comp, "kind"), paths)
	}
	var out []manifest
	for _, f := range paths {
		for _, d := range loadDocs(t, "exporters/"+f) {
			out = append(out, manifest{"exporters/" + f, d})
		}
	}
	if len(out) != 2 {
		t.Fatalf("want the redis and postgres exporter patches, got %d documents", len(out))
	}
	return out
}

var digestRE = regexp.MustCompile(`^[a-z0-9._\-/]+:[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$`)

// podSpec returns the pod template spec of a workload, or nil.
func podSpec(m manifest) obj {
	switch m.kind() {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		s, _ := get(m.obj, "spec", "template", "spec").(obj)
		return s
	}
	return nil
}

// TestImagesPinned: every image has a tag and a sha256 digest, never latest.
func TestImagesPinned(t *testing.T) {
	all := append(loadManifests(t), loadExporterPatches(t)...)
	n := 0
	for _, m := range all {
		spec := podSpec(m)
		for _, c := range append(list(spec, "containers"), list(spec, "initContainers")...) {
			n++
			img := str(c, "image")
			if !digestRE.MatchString(img) || strings.Contains(img, ":latest") {
				t.Errorf("%s container %s: image %q is not pinned as name:tag@sha256:digest", m, str(c, "name"), img)
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
		spec := podSpec(m)
		if spec == nil {
			continue
		}
		patch := strings.HasPrefix(m.file, "exporters/")
		psc, _ := get(spec, "securityContext").(obj)
		for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
			if b, _ := spec[k].(bool); b {
				t.Errorf("%s: %s", m, k)
			}
		}
		for _, v := range list(spec, "volumes") {
			if get(v, "hostPath") != nil {
				t.Errorf("%s: hostPath volume %s", m, str(v, "name"))
			}
		}
		if !patch {
			if b, _ := psc["runAsNonRoot"].(bool); !b {
				t.Errorf("%s: pod runAsNonRoot is not true", m)
			}
			if u, _ := psc["runAsUser"].(int); u <= 0 {
				t.Errorf("%s: pod runAsUser %v: want a numeric non-root user", m, psc["runAsUser"])
			}
		}
		for _, c := range append(list(spec, "containers"), list(spec, "initContainers")...) {
			name := str(c, "name")
			csc, _ := get(c, "securityContext").(obj)
			if b, ok := csc["allowPrivilegeEscalation"].(bool); !ok || b {
				t.Errorf("%s container %s: allowPrivilegeEscalation must be false", m, name)
			}
			if b, _ := csc["privileged"].(bool); b {
				t.Errorf("%s container %s: privileged", m, name)
			}
			if !equalSets(strs(csc, "capabilities", "drop"), []string{"ALL"}) || len(list(csc, "capabilities", "add")) > 0 {
				t.Errorf("%s container %s: capabilities must drop ALL and add none", m, name)
			}
			seccomp := str(csc, "seccompProfile", "type")
			if seccomp == "" {
				seccomp = str(psc, "seccompProfile", "type")
			}
			if seccomp != "RuntimeDefault" {
				t.Errorf("%s container %s: seccompProfile %q, want RuntimeDefault", m, name, seccomp)
			}
			if patch {
				// A sidecar cannot rely on the pod's settings it does not own.
				if b, _ := csc["runAsNonRoot"].(bool); !b {
					t.Errorf("%s container %s: runAsNonRoot is not true", m, name)
				}
				if u, _ := csc["runAsUser"].(int); u <= 0 {
					t.Errorf("%s container %s: runAsUser %v: want numeric non-root", m, name, csc["runAsUser"])
				}
			}
			if b, _ := csc["readOnlyRootFilesystem"].(bool); !b {
				t.Errorf("%s container %s: readOnlyRootFilesystem is not true", m, name)
			}
			for _, p := range list(c, "ports") {
				if get(p, "hostPort") != nil {
					t.Errorf("%s container %s: hostPort", m, name)
				}
			}
			if get(c, "resources", "limits", "memory") == nil || get(c, "resources", "requests", "cpu") == nil {
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
		labels, _ := get(m.obj, "metadata", "labels").(obj)
		if labels["app.kubernetes.io/name"] == nil || labels["app.kubernetes.io/component"] == nil || labels["app.kubernetes.io/part-of"] != "dark-tower" {
			t.Errorf("%s: labels %v lack name, component or part-of=dark-tower", m, labels)
		}
		ns := str(m.obj, "metadata", "namespace")
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
		if spec := podSpec(m); spec != nil {
			sel, _ := get(m.obj, "spec", "selector", "matchLabels").(obj)
			keys := sortedKeys(sel)
			if !equalSets(keys, []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of"}) {
				t.Errorf("%s: selector keys %v, want name and part-of only", m, keys)
			}
			tl, _ := get(m.obj, "spec", "template", "metadata", "labels").(obj)
			for k, v := range sel {
				if tl[k] != v {
					t.Errorf("%s: template label %s=%v does not match selector %v", m, k, tl[k], v)
				}
			}
		}
		if m.kind() == "Service" {
			sel, _ := get(m.obj, "spec", "selector").(obj)
			if !equalSets(sortedKeys(sel), []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of"}) {
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
			var rules []string
			for _, r := range list(m.obj, "rules") {
				verbs := strs(r, "verbs")
				sort.Strings(verbs)
				for _, g := range strs(r, "apiGroups") {
					for _, res := range strs(r, "resources") {
						rules = append(rules, g+"/"+res+":"+strings.Join(verbs, ","))
					}
				}
				if len(list(r, "resourceNames")) > 0 || len(list(r, "nonResourceURLs")) > 0 {
					t.Errorf("%s: unexpected rule %v", m, r)
				}
			}
			sort.Strings(rules)
			roles[m.name()] = rules
		case "RoleBinding":
			subj := list(m.obj, "subjects")
			if str(m.obj, "roleRef", "kind") != "Role" || len(subj) != 1 || str(subj[0], "kind") != "ServiceAccount" || str(subj[0], "namespace") != obsNS {
				t.Errorf("%s: want one ServiceAccount of %s bound to a Role", m, obsNS)
				continue
			}
			bound[str(m.obj, "roleRef", "name")] = str(subj[0], "name")
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
func policyPorts(m manifest, dir string) []string {
	var out []string
	peerKey := "to"
	if dir == "ingress" {
		peerKey = "from"
	}
	for _, r := range list(m.obj, "spec", dir) {
		peers := []string{"*"}
		if ps := list(r, peerKey); len(ps) > 0 {
			peers = nil
			for _, p := range ps {
				var parts []string
				if ns := str(p, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"); ns != "" {
					parts = append(parts, "ns="+ns)
				}
				if app := str(p, "podSelector", "matchLabels", "app.kubernetes.io/name"); app != "" {
					parts = append(parts, "pod="+app)
				}
				if app := str(p, "podSelector", "matchLabels", "k8s-app"); app != "" {
					parts = append(parts, "pod="+app)
				}
				peers = append(peers, strings.Join(parts, "+"))
			}
		}
		for _, peer := range peers {
			for _, p := range list(r, "ports") {
				out = append(out, fmt.Sprintf("%s:%v/%s", peer, get(p, "port"), str(p, "protocol")))
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
		sel, _ := get(m.obj, "spec", "podSelector", "matchLabels").(obj)
		types := strs(m.obj, "spec", "policyTypes")
		switch {
		case len(sel) == 0 && m.name() == "default-deny":
			denyAll = equalSets(types, []string{"Ingress", "Egress"}) && get(m.obj, "spec", "ingress") == nil && get(m.obj, "spec", "egress") == nil
		case len(sel) == 0 && m.name() == "allow-dns":
			dns = strings.Join(policyPorts(m, "egress"), " ") == "ns=kube-system+pod=kube-dns:53/TCP ns=kube-system+pod=kube-dns:53/UDP"
		case len(sel) == 1:
			app, _ := sel["app.kubernetes.io/name"].(string)
			if !equalSets(types, []string{"Ingress", "Egress"}) {
				t.Errorf("%s: policyTypes %v, want both", m, types)
			}
			egress[app] = policyPorts(m, "egress")
			ingress[app] = policyPorts(m, "ingress")
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
		spec := podSpec(m)
		if spec == nil {
			continue
		}
		app := str(m.obj, "metadata", "labels", "app.kubernetes.io/name")
		ports[app] = map[string]int{}
		for _, c := range list(spec, "containers") {
			for _, p := range list(c, "ports") {
				n, _ := get(p, "containerPort").(int)
				ports[app][str(p, "name")] = n
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				if pp := get(c, probe, "httpGet", "port"); pp != nil {
					if s, ok := pp.(string); !ok || ports[app][s] == 0 {
						t.Errorf("%s %s: port %v is not a named container port", m, probe, pp)
					}
				}
			}
		}
	}
	wantNodePort := map[string]int{"prometheus": 30090, "grafana": 30030, "loki": 30100}
	for _, m := range all {
		if m.kind() != "Service" {
			continue
		}
		app := str(m.obj, "spec", "selector", "app.kubernetes.io/name")
		for _, p := range list(m.obj, "spec", "ports") {
			tp, _ := get(p, "targetPort").(string)
			if ports[app][tp] == 0 {
				t.Errorf("%s: targetPort %v is not a named port of %s", m, get(p, "targetPort"), app)
			}
			if np, _ := get(p, "nodePort").(int); np != 0 && np != wantNodePort[app] {
				t.Errorf("%s: nodePort %d, want %d", m, np, wantNodePort[app])
			}
			if str(m.obj, "spec", "type") == "NodePort" && get(p, "nodePort") == nil {
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
		if !ok || m.kind() != "StatefulSet" || str(m.obj, "metadata", "namespace") != appNS {
			t.Errorf("%s: want a patch of StatefulSet redis or postgres in %s", m, appNS)
			continue
		}
		cs := list(podSpec(m), "containers")
		if len(cs) != 1 || str(cs[0], "name") != w.containerName {
			t.Errorf("%s: want exactly the %s container", m, w.containerName)
			continue
		}
		c := cs[0]
		var metrics int
		for _, p := range list(c, "ports") {
			if str(p, "name") == "metrics" {
				metrics, _ = get(p, "containerPort").(int)
			}
		}
		if metrics != w.port {
			t.Errorf("%s: port metrics = %d, want %d", m, metrics, w.port)
		}
		if a := str(m.obj, "spec", "template", "metadata", "annotations", "prometheus.io/port"); a != fmt.Sprint(w.port) {
			t.Errorf("%s: prometheus.io/port annotation %q, want %d", m, a, w.port)
		}
		var fromSecret bool
		for _, e := range list(c, "env") {
			if str(e, "name") == w.secretEnv {
				fromSecret = str(e, "valueFrom", "secretKeyRef", "name") == w.secret && str(e, "valueFrom", "secretKeyRef", "key") == w.key
			}
			if v := strings.ToLower(str(e, "value")); strings.Contains(v, "password") || strings.Contains(v, "@") {
				t.Errorf("%s: env %s carries a credential literally", m, str(e, "name"))
			}
		}
		if !fromSecret {
			t.Errorf("%s: %s must come from Secret %s key %s", m, w.secretEnv, w.secret, w.key)
		}
		for _, a := range append(strs(c, "args"), strs(c, "command")...) {
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
	for _, d := range loadDocs(t, "prometheus/deployment.yaml") {
		for _, v := range list(d, "spec", "template", "spec", "volumes") {
			for _, s := range list(v, "projected", "sources") {
				if str(s, "configMap", "name") != "prometheus-rules" {
					continue
				}
				for _, it := range list(s, "configMap", "items") {
					if str(it, "path") != "rules/"+str(it, "key") {
						t.Errorf("rule %s mounted at %s, want rules/%s", str(it, "key"), str(it, "path"), str(it, "key"))
					}
					mounted = append(mounted, str(it, "key"))
				}
			}
		}
	}
	if !equalSets(mounted, ruleKeys) {
		t.Errorf("Prometheus mounts rules %v, ConfigMap holds %v", mounted, ruleKeys)
	}
}
