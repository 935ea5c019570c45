package validate

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/darktower/devstack/internal/manifest"
)

// componentSpec is SPEC section 2's table for the dark-tower namespace.
type componentSpec struct {
	kind      string
	replicas  int32
	ports     []corev1.ContainerPort // name, port, protocol of the main container
	liveness  string                 // httpGet path, "" when not HTTP
	readiness string
}

var spec2 = map[string]componentSpec{
	"ac-service":         {"Deployment", 2, []corev1.ContainerPort{{Name: "http", ContainerPort: 8082, Protocol: "TCP"}}, "/health", "/ready"},
	"global-controller":  {"Deployment", 2, []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}, {Name: "grpc", ContainerPort: 50051, Protocol: "TCP"}}, "/health", "/ready"},
	"meeting-controller": {"Deployment", 2, []corev1.ContainerPort{{Name: "grpc", ContainerPort: 50052, Protocol: "TCP"}, {Name: "health", ContainerPort: 8081, Protocol: "TCP"}, {Name: "webtransport", ContainerPort: 4433, Protocol: "UDP"}}, "/health/live", "/health/ready"},
	"redis":              {"StatefulSet", 1, []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379, Protocol: "TCP"}}, "", ""},
	"postgres":           {"StatefulSet", 1, []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432, Protocol: "TCP"}}, "", ""},
	"db-migrate":         {"Job", 1, nil, "", ""},
}

func workloadByName(t *testing.T, m manifest.Set, name string) *manifest.Workload {
	t.Helper()
	for _, w := range Workloads(t, m) {
		if w.Template.Labels["app.kubernetes.io/name"] == name && w.Namespace == NS {
			return &w
		}
	}
	return nil
}

// TestTopology: SPEC section 2's workloads, replicas, named ports and probe paths.
func TestTopology(t *testing.T) {
	m := Render(t, KindOverlay)
	for name, want := range spec2 {
		w := workloadByName(t, m, name)
		if w == nil {
			t.Errorf("no %s renders pods labelled app.kubernetes.io/name=%s in %s", want.kind, name, NS)
			continue
		}
		if w.Kind != want.kind {
			t.Errorf("%s: a %s, SPEC says %s", w.Ref(), w.Kind, want.kind)
		}
		if w.Kind != "Job" && w.Replicas != want.replicas {
			t.Errorf("%s: %d replicas, SPEC says %d", w.Ref(), w.Replicas, want.replicas)
		}
		if len(w.Template.Spec.Containers) == 0 {
			continue
		}
		c := w.Template.Spec.Containers[0]
		for _, p := range want.ports {
			if !hasNamedPort(c.Ports, p) {
				t.Errorf("%s container %s: no port %s %d/%s (has %v)", w.Ref(), c.Name, p.Name, p.ContainerPort, p.Protocol, c.Ports)
			}
		}
		if want.liveness != "" {
			checkProbePath(t, w, c, "liveness", c.LivenessProbe, want.liveness)
			checkProbePath(t, w, c, "readiness", c.ReadinessProbe, want.readiness)
		} else if w.Kind != "Job" && (c.LivenessProbe == nil || c.ReadinessProbe == nil) {
			t.Errorf("%s container %s: needs liveness and readiness probes", w.Ref(), c.Name)
		}
	}
}

func hasNamedPort(ports []corev1.ContainerPort, want corev1.ContainerPort) bool {
	for _, p := range ports {
		if p.Name == want.Name && p.ContainerPort == want.ContainerPort && protoOf(p) == want.Protocol {
			return true
		}
	}
	return false
}

func checkProbePath(t *testing.T, w *manifest.Workload, c corev1.Container, kind string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s container %s: no httpGet %s probe (SPEC: %s)", w.Ref(), c.Name, kind, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s container %s: %s probe path %s, SPEC says %s", w.Ref(), c.Name, kind, p.HTTPGet.Path, path)
	}
}

// TestPortsAndSelectors: every Service selects pods and every targetPort names one of their
// container ports with the Service port's protocol; every probe names a container port; every
// PodDisruptionBudget selects pods; selectors use only labels that never change:
// app.kubernetes.io/name, part-of and instance (which tells the verifier's serve
// Deployment from its Job).
func TestPortsAndSelectors(t *testing.T) {
	m := Render(t, KindOverlay)
	ws := Workloads(t, m)
	for _, w := range ws {
		checkSelectorLabels(t, w.Ref(), w.Selector)
		if w.Selector != nil && !labels.SelectorFromSet(w.Selector).Matches(labels.Set(w.Template.Labels)) {
			t.Errorf("%s: selector %v does not match its own pod template labels %v", w.Ref(), w.Selector, w.Template.Labels)
		}
		for _, c := range append(append([]corev1.Container{}, w.Template.Spec.InitContainers...), w.Template.Spec.Containers...) {
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil {
					continue
				}
				var port *intstr.IntOrString
				switch {
				case p.HTTPGet != nil:
					port = &p.HTTPGet.Port
				case p.TCPSocket != nil:
					port = &p.TCPSocket.Port
				case p.GRPC != nil:
					port = &intstr.IntOrString{IntVal: p.GRPC.Port}
				}
				if port != nil && !containerPortMatches(c.Ports, *port, corev1.ProtocolTCP) {
					t.Errorf("%s container %s: %s probe port %s is not one of its TCP container ports", w.Ref(), c.Name, kind, port.String())
				}
			}
		}
	}
	for _, o := range m.OfKind("Service") {
		var svc corev1.Service
		Typed(t, o, &svc)
		ref := "Service " + svc.Namespace + "/" + svc.Name
		checkSelectorLabels(t, ref, svc.Spec.Selector)
		var pods []manifest.Workload
		for _, w := range ws {
			if w.Namespace == svc.Namespace && len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.Template.Labels)) {
				pods = append(pods, w)
			}
		}
		if len(pods) == 0 {
			t.Errorf("%s: selector %v matches no rendered pod template", ref, svc.Spec.Selector)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			tp := sp.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(sp.Port)
			}
			if tp.Type == intstr.Int {
				t.Errorf("%s port %s: targetPort %s is a number; name the container port so a renumbering cannot break it", ref, sp.Name, tp.String())
			}
			for _, w := range pods {
				var ports []corev1.ContainerPort
				for _, c := range w.Template.Spec.Containers {
					ports = append(ports, c.Ports...)
				}
				if !containerPortMatches(ports, tp, protoOfService(sp)) {
					t.Errorf("%s port %s: targetPort %s/%s is not a container port of %s", ref, sp.Name, tp.String(), protoOfService(sp), w.Ref())
				}
			}
		}
	}
	for _, o := range m.OfKind("PodDisruptionBudget") {
		var pdb policyv1.PodDisruptionBudget
		Typed(t, o, &pdb)
		n := 0
		for _, w := range ws {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err == nil && w.Namespace == pdb.Namespace && sel.Matches(labels.Set(w.Template.Labels)) {
				n++
				if w.Replicas < 2 && pdb.Spec.MinAvailable != nil {
					t.Errorf("PodDisruptionBudget %s/%s: minAvailable on %s with %d replica(s) blocks every drain", pdb.Namespace, pdb.Name, w.Ref(), w.Replicas)
				}
			}
		}
		if n == 0 {
			t.Errorf("PodDisruptionBudget %s/%s selects no rendered pods", pdb.Namespace, pdb.Name)
		}
	}
}

func containerPortMatches(ports []corev1.ContainerPort, tp intstr.IntOrString, proto corev1.Protocol) bool {
	for _, p := range ports {
		if protoOf(p) != proto {
			continue
		}
		if (tp.Type == intstr.String && p.Name == tp.StrVal) || (tp.Type == intstr.Int && p.ContainerPort == tp.IntVal) {
			return true
		}
	}
	return false
}

func checkSelectorLabels(t *testing.T, ref string, sel map[string]string) {
	t.Helper()
	for k := range sel {
		if k != "app.kubernetes.io/name" && k != "app.kubernetes.io/part-of" && k != "app.kubernetes.io/instance" {
			t.Errorf("%s: selector uses %s; selectors use only app.kubernetes.io/name (+ part-of, instance)", ref, k)
		}
	}
	if sel != nil && sel["app.kubernetes.io/name"] == "" {
		t.Errorf("%s: selector lacks app.kubernetes.io/name", ref)
	}
}

// TestLabels: every object carries app.kubernetes.io/name, component and part-of=dark-tower, and
// every pod template the same.
func TestLabels(t *testing.T) {
	for _, dir := range []string{KindOverlay, ServiceMonitorsDir, NamespacesDir} {
		m := Render(t, dir)
		if dir == KindOverlay {
			m = WithFiles(t, m, VerifierJob)
		}
		for _, o := range m.Objects {
			checkLabels(t, objKey(o.GetKind(), o.GetNamespace(), o.GetName()), o.GetLabels())
		}
		for _, w := range Workloads(t, m) {
			checkLabels(t, w.Ref()+" pod template", w.Template.Labels)
		}
	}
}

func checkLabels(t *testing.T, ref string, l map[string]string) {
	t.Helper()
	if l["app.kubernetes.io/name"] == "" || l["app.kubernetes.io/component"] == "" || l["app.kubernetes.io/part-of"] != "dark-tower" {
		t.Errorf("%s: labels %v; want app.kubernetes.io/name, app.kubernetes.io/component and app.kubernetes.io/part-of=dark-tower", ref, l)
	}
}

// TestReferences: every Secret, ConfigMap, key and PVC template a pod uses is rendered; every
// $(VAR) in env, command and args is defined before use; nothing passes a password in argv.
func TestReferences(t *testing.T) {
	m := WithFiles(t, Render(t, KindOverlay), VerifierJob)
	for _, w := range Workloads(t, m) {
		spec := w.Template.Spec
		for _, v := range spec.Volumes {
			switch {
			case v.Secret != nil:
				checkKeys(t, w, "Secret", v.Secret.SecretName, Data(t, m, "Secret", w.Namespace, v.Secret.SecretName), v.Secret.Items, v.Secret.Optional)
			case v.ConfigMap != nil:
				checkKeys(t, w, "ConfigMap", v.ConfigMap.Name, Data(t, m, "ConfigMap", w.Namespace, v.ConfigMap.Name), v.ConfigMap.Items, v.ConfigMap.Optional)
			case v.PersistentVolumeClaim != nil:
				if m.Find("PersistentVolumeClaim", w.Namespace, v.PersistentVolumeClaim.ClaimName) == nil {
					t.Errorf("%s: volume %s: PersistentVolumeClaim %s is not rendered", w.Ref(), v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			env, err := m.ResolveEnv(w.Namespace, c)
			if err != nil {
				t.Errorf("%s: %v", w.Ref(), err)
			}
			for k, v := range env {
				if manifest.KubeletRef.MatchString(v) && strings.Contains(v, "$(") {
					t.Errorf("%s container %s: env %s keeps an undefined reference: %s", w.Ref(), c.Name, k, v)
				}
			}
			for _, a := range append(append([]string{}, c.Command...), c.Args...) {
				low := strings.ToLower(a)
				if strings.Contains(low, "requirepass") || strings.Contains(low, "password=") || strings.Contains(low, "--password") {
					t.Errorf("%s container %s: a password on the command line (%q); load it from a Secret-mounted file", w.Ref(), c.Name, a)
				}
			}
			for _, vm := range c.VolumeMounts {
				if !hasVolume(spec.Volumes, vm.Name) && !hasClaimTemplate(w, vm.Name) {
					t.Errorf("%s container %s: mounts volume %s that the pod does not define", w.Ref(), c.Name, vm.Name)
				}
			}
		}
	}
}

func checkKeys(t *testing.T, w manifest.Workload, kind, name string, data map[string]string, items []corev1.KeyToPath, optional *bool) {
	t.Helper()
	if optional != nil && *optional {
		return
	}
	if data == nil {
		t.Errorf("%s: %s %s/%s is not rendered", w.Ref(), kind, w.Namespace, name)
		return
	}
	for _, it := range items {
		if _, ok := data[it.Key]; !ok {
			t.Errorf("%s: %s %s/%s has no key %q", w.Ref(), kind, w.Namespace, name, it.Key)
		}
	}
}

func hasVolume(vs []corev1.Volume, name string) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}

func hasClaimTemplate(w manifest.Workload, name string) bool { return contains(w.ClaimTemplates, name) }

// TestCredentials: the client secrets AC knows (clients.yaml in ac-clients) are the ones GC, MC
// and the verifier are given, with SPEC section 4's scopes and service types; the database and
// Redis passwords agree between the servers and their clients.
func TestCredentials(t *testing.T) {
	m := Render(t, KindOverlay)
	raw, ok := Data(t, m, "Secret", NS, "ac-clients")["clients.yaml"]
	if !ok {
		t.Fatalf("Secret %s/ac-clients with key clients.yaml is not rendered", NS)
	}
	var file struct {
		Clients []struct {
			ClientID     string   `json:"client_id"`
			ClientSecret string   `json:"client_secret"`
			ServiceType  string   `json:"service_type"`
			Scopes       []string `json:"scopes"`
		} `json:"clients"`
	}
	if err := yaml.UnmarshalStrict([]byte(raw), &file); err != nil {
		t.Fatalf("ac-clients clients.yaml: %v", err)
	}
	known := map[string]string{}
	for _, c := range file.Clients {
		known[c.ClientID] = c.ClientSecret
		want, ok := spec4Clients[c.ClientID]
		if !ok {
			t.Errorf("clients.yaml: unexpected client %q", c.ClientID)
			continue
		}
		if c.ServiceType != want.serviceType || strings.Join(c.Scopes, " ") != want.scope {
			t.Errorf("clients.yaml: client %s has service_type %q scopes %v; SPEC section 4 says %q [%s]", c.ClientID, c.ServiceType, c.Scopes, want.serviceType, want.scope)
		}
		if len(c.ClientSecret) < 16 {
			t.Errorf("clients.yaml: client %s secret shorter than 16 characters", c.ClientID)
		}
	}
	for _, u := range []struct{ component, idVar, secretVar, secret string }{
		{"global-controller", "GC_CLIENT_ID", "GC_CLIENT_SECRET", "gc-client"},
		{"meeting-controller", "MC_CLIENT_ID", "MC_CLIENT_SECRET", "mc-client"},
		{"verifier", "VERIFIER_CLIENT_ID", "VERIFIER_CLIENT_SECRET", "verifier-client"},
	} {
		s := Data(t, m, "Secret", NS, u.secret)
		if s == nil {
			t.Errorf("Secret %s/%s is not rendered", NS, u.secret)
			continue
		}
		id, secret := s[u.idVar], s[u.secretVar]
		if id == "" || secret == "" {
			t.Errorf("Secret %s lacks %s or %s", u.secret, u.idVar, u.secretVar)
		} else if known[id] != secret {
			t.Errorf("Secret %s: the secret for client %q differs from the one in ac-clients clients.yaml", u.secret, id)
		}
		// What the workload actually receives.
		found := false
		for _, w := range Workloads(t, m) {
			if w.Template.Labels["app.kubernetes.io/name"] != u.component {
				continue
			}
			for _, c := range w.Template.Spec.Containers {
				env, _ := m.ResolveEnv(w.Namespace, c)
				if env[u.idVar] == "" && env[u.secretVar] == "" {
					continue
				}
				found = true
				if known[env[u.idVar]] == "" || known[env[u.idVar]] != env[u.secretVar] {
					t.Errorf("%s container %s: %s/%s do not match a client in ac-clients clients.yaml", w.Ref(), c.Name, u.idVar, u.secretVar)
				}
			}
		}
		if !found {
			t.Errorf("no %s container gets %s and %s", u.component, u.idVar, u.secretVar)
		}
	}
	checkDatastorePasswords(t, m)
}

var spec4Clients = map[string]struct{ serviceType, scope string }{
	"meeting-controller": {"meeting-controller", "service.write.gc"},
	"global-controller":  {"global-controller", "service.write.mc"},
	"verifier":           {"verifier", "service.read.gc"},
	"web-client":         {"web-client", "meeting.join"},
}

func checkDatastorePasswords(t *testing.T, m manifest.Set) {
	t.Helper()
	pg := Data(t, m, "Secret", NS, "postgres-credentials")
	if pg == nil {
		t.Errorf("Secret %s/postgres-credentials is not rendered", NS)
	} else {
		u, err := url.Parse(pg["DATABASE_URL"])
		if err != nil || u.User == nil {
			t.Errorf("postgres-credentials DATABASE_URL does not parse as postgres://user:password@host/db")
		} else {
			pw, _ := u.User.Password()
			if pw != pg["POSTGRES_PASSWORD"] || pw == "" {
				t.Errorf("postgres-credentials: the password in DATABASE_URL differs from POSTGRES_PASSWORD")
			}
			if u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Host != "postgres.dark-tower:5432" || u.Path != "/dark_tower" || u.User.Username() != "darktower" {
				t.Errorf("postgres-credentials DATABASE_URL is %s://%s@%s%s; SPEC section 3 says postgres://darktower:<password>@postgres.dark-tower:5432/dark_tower", u.Scheme, u.User.Username(), u.Host, u.Path)
			}
		}
	}
	rd := Data(t, m, "Secret", NS, "redis-credentials")
	if rd == nil {
		t.Errorf("Secret %s/redis-credentials is not rendered", NS)
		return
	}
	pass := ""
	for _, line := range strings.Split(rd["redis.conf"], "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "requirepass" {
			pass = strings.Trim(f[1], `"`)
		}
	}
	if pass == "" || pass != rd["REDIS_PASSWORD"] {
		t.Errorf("redis-credentials: redis.conf requirepass missing or different from REDIS_PASSWORD")
	}
	u, err := url.Parse(rd["REDIS_URL"])
	if err != nil || u.User == nil {
		t.Errorf("redis-credentials REDIS_URL does not parse as redis://:password@host:port")
		return
	}
	if pw, _ := u.User.Password(); pw != pass {
		t.Errorf("redis-credentials: the password in REDIS_URL differs from redis.conf requirepass")
	}
	if u.Host != "redis.dark-tower:6379" {
		t.Errorf("redis-credentials REDIS_URL host %s; SPEC section 3 says redis.dark-tower:6379", u.Host)
	}
}

// TestServiceDiscovery: SPEC section 3's values, and every in-cluster address any env value
// names (<service>.<namespace>[.svc[.cluster.local]]:<port>) is a rendered Service port.
func TestServiceDiscovery(t *testing.T) {
	m := Render(t, KindOverlay)
	want := map[string]map[string]string{
		"global-controller": {"AC_INTERNAL_URL": "http://ac-service.dark-tower:8082", "AC_JWKS_URL": "http://ac-service.dark-tower:8082/.well-known/jwks.json",
			"BIND_ADDRESS": "0.0.0.0:8080", "GC_GRPC_BIND_ADDRESS": "0.0.0.0:50051", "GC_REGION": "local"},
		"meeting-controller": {"AC_JWKS_URL": "http://ac-service.dark-tower:8082/.well-known/jwks.json", "GC_GRPC_URL": "http://global-controller.dark-tower:50051",
			"MC_REGION": "local", "MC_GRPC_ADVERTISE_ADDRESS": "http://" + manifest.FieldValues["status.podIP"] + ":50052",
			"MC_WEBTRANSPORT_ADVERTISE_ADDRESS": "https://" + manifest.FieldValues["status.podIP"] + ":4433"},
		"ac-service": {"BIND_ADDRESS": "0.0.0.0:8082"},
	}
	services := map[string]bool{}
	for _, o := range m.OfKind("Service") {
		var svc corev1.Service
		Typed(t, o, &svc)
		for _, p := range svc.Spec.Ports {
			services[fmt.Sprintf("%s.%s:%d", svc.Name, svc.Namespace, p.Port)] = true
		}
	}
	for _, w := range Workloads(t, m) {
		name := w.Template.Labels["app.kubernetes.io/name"]
		for _, c := range append(append([]corev1.Container{}, w.Template.Spec.InitContainers...), w.Template.Spec.Containers...) {
			env, _ := m.ResolveEnv(w.Namespace, c)
			if i := 0; i == 0 && len(w.Template.Spec.Containers) > 0 && c.Name == w.Template.Spec.Containers[0].Name {
				for k, v := range want[name] {
					if env[k] != v {
						t.Errorf("%s container %s: %s=%q, SPEC section 3 says %q", w.Ref(), c.Name, k, env[k], v)
					}
				}
			}
			for k, v := range env {
				for _, addr := range clusterAddrs(v) {
					if !services[addr] {
						t.Errorf("%s container %s: %s names %s, which is no rendered Service port", w.Ref(), c.Name, k, addr)
					}
				}
			}
		}
	}
}

// clusterAddrs finds service.namespace[.svc[.cluster.local]]:port in a value.
func clusterAddrs(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		host := f
		if u, err := url.Parse(f); err == nil && u.Host != "" {
			host = u.Host
		}
		h, p, ok := strings.Cut(host, ":")
		if !ok {
			continue
		}
		if _, err := strconv.Atoi(p); err != nil {
			continue
		}
		h = strings.TrimSuffix(strings.TrimSuffix(h, ".cluster.local"), ".svc")
		if parts := strings.Split(h, "."); len(parts) == 2 && (parts[1] == NS || parts[1] == ObsNS) {
			out = append(out, h+":"+p)
		}
	}
	return out
}

// TestSecurityAndSizing: numeric non-root users everywhere (SPEC section 9, mistake 12), the
// base at ADR-0012's production figures, and the Kind overlay fitting a 4-CPU, 8 GiB VM with
// room to spare.
func TestSecurityAndSizing(t *testing.T) {
	kind := Render(t, KindOverlay)
	var cpu, mem resource.Quantity
	for _, w := range Workloads(t, kind) {
		ps := w.Template.Spec.SecurityContext
		for _, c := range append(append([]corev1.Container{}, w.Template.Spec.InitContainers...), w.Template.Spec.Containers...) {
			var uid *int64
			if ps != nil {
				uid = ps.RunAsUser
			}
			if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
				uid = c.SecurityContext.RunAsUser
			}
			if uid == nil || *uid == 0 {
				t.Errorf("%s container %s: no numeric non-zero runAsUser", w.Ref(), c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s container %s: needs cpu/memory requests and a memory limit", w.Ref(), c.Name)
			}
			if w.Kind != "Job" {
				for range w.Replicas {
					cpu.Add(*c.Resources.Requests.Cpu())
					mem.Add(*c.Resources.Requests.Memory())
				}
			}
		}
	}
	if cpu.Cmp(resource.MustParse("3")) > 0 || mem.Cmp(resource.MustParse("6Gi")) > 0 {
		t.Errorf("the Kind overlay requests %s CPU and %s memory in all; a 4-CPU, 8 GiB VM needs room to spare (<= 3 CPU, 6Gi)", cpu.String(), mem.String())
	}
	base := Render(t, "infra/base")
	for name, want := range map[string][4]string{
		"global-controller":  {"1", "2Gi", "3", "4Gi"},
		"meeting-controller": {"2", "6Gi", "4", "8Gi"},
	} {
		w := workloadByName(t, base, name)
		if w == nil || len(w.Template.Spec.Containers) == 0 {
			t.Errorf("infra/base renders no %s", name)
			continue
		}
		r := w.Template.Spec.Containers[0].Resources
		got := [4]*resource.Quantity{r.Requests.Cpu(), r.Requests.Memory(), r.Limits.Cpu(), r.Limits.Memory()}
		for i, q := range got {
			if q.Cmp(resource.MustParse(want[i])) != 0 {
				t.Errorf("infra/base %s: requests/limits %s/%s cpu, %s/%s memory; ADR-0012 says %s/%s cpu, %s/%s memory",
					name, got[0], got[2], got[1], got[3], want[0], want[2], want[1], want[3])
				break
			}
		}
	}
}

// TestSelectorsMatchOnlyTheirOwnPods: no Deployment or StatefulSet selects the pods of another
// workload, the verifier Job's (created outside Kustomize) included; otherwise its controller
// counts them as its own replicas.
func TestSelectorsMatchOnlyTheirOwnPods(t *testing.T) {
	m := WithFiles(t, Render(t, KindOverlay), VerifierJob)
	ws := Workloads(t, m)
	for _, w := range ws {
		if w.Selector == nil {
			continue
		}
		sel := labels.SelectorFromSet(w.Selector)
		for _, o := range ws {
			if o.Ref() == w.Ref() || o.Namespace != w.Namespace {
				continue
			}
			if sel.Matches(labels.Set(o.Template.Labels)) {
				t.Errorf("%s: its selector %v also matches the pods of %s (%v)", w.Ref(), w.Selector, o.Ref(), o.Template.Labels)
			}
		}
	}
}
