package infracheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/testsupport"
)

// render runs the pinned `bin/kubectl kustomize infra/overlays/kind` in the repository.
func render(t *testing.T) manifest.Set {
	t.Helper()
	root := testsupport.ModuleRoot(t)
	kubectl := filepath.Join(root, "bin", "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("%s missing: run `make %s` (pinned in mk/tools.mk)", kubectl, kubectl)
	}
	m, err := manifest.Render(kubectl, root, "infra/overlays/kind")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// secretData is a rendered Secret's data, nil when not rendered.
func secretData(t *testing.T, m manifest.Set, ns, name string) map[string]string {
	t.Helper()
	d, err := m.Data("Secret", ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// workload is one of our binaries' pods as rendered.
type workload struct {
	manifest.Workload
	c corev1.Container // the container running the image dark-tower/<binary>
}

// ourWorkloads returns the workloads whose main container runs one of our images.
func ourWorkloads(t *testing.T, m manifest.Set) map[string]workload {
	t.Helper()
	ws, err := m.Workloads()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]workload{}
	for _, w := range ws {
		for _, c := range w.Template.Spec.Containers {
			name, _ := manifest.SplitImage(c.Image)
			bin, ok := strings.CutPrefix(name, "dark-tower/")
			if !ok {
				continue
			}
			if _, dup := out[bin]; dup {
				t.Errorf("two workloads run dark-tower/%s; the checks take the first", bin)
				continue
			}
			out[bin] = workload{Workload: w, c: c}
		}
	}
	return out
}

// podIP stands in for status.podIP; rewrite() turns <podIP>:<containerPort> into a loopback
// address.
var podIP = manifest.FieldValues["status.podIP"]

// portNumber resolves a port (a name or a number) against the container's ports.
func portNumber(c corev1.Container, p intstr.IntOrString) (int, bool) {
	if p.Type == intstr.Int {
		return int(p.IntVal), true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), true
		}
	}
	return 0, false
}
