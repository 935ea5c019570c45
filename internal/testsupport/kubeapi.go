package testsupport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/darktower/devstack/internal/kubeapi"
)

// KubeAPIServerBinary is $KUBE_APISERVER_BIN, else bin/kube-apiserver of the module.
func KubeAPIServerBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KUBE_APISERVER_BIN"); p != "" {
		return p
	}
	return filepath.Join(ModuleRoot(t), "bin", "kube-apiserver")
}

// StartKubeAPI starts a throwaway kube-apiserver and its etcd (internal/kubeapi)
// for the test and stops them at its end. A missing binary fails the test:
// the servers are what is being tested against.
func StartKubeAPI(t testing.TB) *kubeapi.Server {
	t.Helper()
	s, err := kubeapi.Start(KubeAPIServerBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
