package validate

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/darktower/devstack/internal/manifest"
)

const (
	monitoringTypesModule = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
	operatorModule        = "github.com/prometheus-operator/prometheus-operator"
	serviceMonitorCRDPath = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
)

// serviceMonitorCRD reads the ServiceMonitor CRD that the operator's repository ships, from the
// operator's Go module at the version of the types this module decodes with (the types module
// itself ships no YAML).
func serviceMonitorCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	version := typesVersion(t)
	cmd := exec.Command("go", "mod", "download", "-json", operatorModule+"@"+version)
	cmd.Dir = t.TempDir() // outside any module: nothing here touches a go.sum
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=on")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go mod download %s@%s: %v\n%s%s", operatorModule, version, err, out.String(), errb.String())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s@%s: %v %s", operatorModule, version, err, out.String())
	}
	b, err := os.ReadFile(filepath.Join(info.Dir, serviceMonitorCRDPath))
	if err != nil {
		t.Fatalf("the operator module has no ServiceMonitor CRD: %v", err)
	}
	objs, err := manifest.Decode(b)
	if err != nil || len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" {
		t.Fatalf("%s: want one CustomResourceDefinition, got %d objects (%v)", serviceMonitorCRDPath, len(objs), err)
	}
	return objs[0]
}

// typesVersion is the version of the monitoring types this module builds with (its go.mod).
func typesVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", monitoringTypesModule).Output()
	v := strings.TrimSpace(string(out))
	if err != nil || v == "" {
		t.Fatalf("go list -m %s: %v", monitoringTypesModule, err)
	}
	return v
}

// TestServiceMonitors decodes every ServiceMonitor of the operator profile strictly against the
// operator's API types, and checks that each selects a rendered Service in its namespace whose
// port it names, and that every component Prometheus scrapes has one.
func TestServiceMonitors(t *testing.T) {
	ops := Render(t, ServiceMonitorsDir)
	base := Render(t, KindOverlay)
	sms := ops.OfKind("ServiceMonitor")
	if len(sms) == 0 {
		t.Fatalf("%s renders no ServiceMonitor", ServiceMonitorsDir)
	}
	covered := map[string]bool{}
	for _, o := range sms {
		ref := "ServiceMonitor " + o.GetNamespace() + "/" + o.GetName()
		if o.GetAPIVersion() != "monitoring.coreos.com/v1" {
			t.Errorf("%s: apiVersion %s, want monitoring.coreos.com/v1", ref, o.GetAPIVersion())
		}
		raw, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		var sm monitoringv1.ServiceMonitor
		if err := yaml.UnmarshalStrict(raw, &sm); err != nil {
			t.Errorf("%s: strict decode against %s: %v", ref, monitoringTypesModule, err)
			continue
		}
		sel, err := metav1LabelSelector(sm)
		if err != nil {
			t.Errorf("%s: selector: %v", ref, err)
			continue
		}
		nss := sm.Spec.NamespaceSelector.MatchNames
		if len(nss) == 0 && !sm.Spec.NamespaceSelector.Any {
			nss = []string{sm.Namespace}
		}
		// The operator makes a target of every endpoint port whose name an endpoint names, in
		// every Service the selector matches: at least one must serve it, and two Services
		// serving it for the same pods would scrape them twice.
		matched := 0
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port == "" {
				t.Errorf("%s: endpoint without a port name (the infra contract selects ports by name)", ref)
				continue
			}
			servedBy := map[string][]string{} // pod component -> Services exposing the port
			for _, so := range base.OfKind("Service") {
				if !contains(nss, so.GetNamespace()) || !sel.Matches(labels.Set(so.GetLabels())) {
					continue
				}
				var svc corev1.Service
				Typed(t, so, &svc)
				if !servicePortNamed(svc, ep.Port) {
					continue
				}
				matched++
				c := svc.Spec.Selector["app.kubernetes.io/name"]
				covered[c] = true
				servedBy[c] = append(servedBy[c], svc.Name)
			}
			for c, svcs := range servedBy {
				if len(svcs) > 1 {
					t.Errorf("%s: port %q of pods %s is exposed by Services %v, each scraped: duplicate series", ref, ep.Port, c, svcs)
				}
			}
		}
		if matched == 0 {
			t.Errorf("%s selects no rendered Service with the port it names (selector %s in namespaces %v)", ref, sel, nss)
		}
	}
	for _, c := range []string{"ac-service", "global-controller", "meeting-controller", "redis", "postgres"} {
		if !covered[c] {
			t.Errorf("no ServiceMonitor selects the %s Service", c)
		}
	}
}

func metav1LabelSelector(sm monitoringv1.ServiceMonitor) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
}

func servicePortNamed(svc corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
