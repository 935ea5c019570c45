package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// The cluster network the remote profile's tests render for: unlike Kind's
// (10.244.0.0/16, 10.96.0.1), so a value left behind shows.
const (
	remotePodCIDR   = "10.32.0.0/12"
	remoteServiceIP = "10.0.0.1"
)

// remoteNetworkEnv gives kind/cluster-network.sh both values, so no cluster is asked.
var remoteNetworkEnv = []string{"POD_CIDR=" + remotePodCIDR, "KUBERNETES_SERVICE_IP=" + remoteServiceIP}

// clusterNetwork runs kind/cluster-network.sh (Skaffold's render before-hook of the remote
// profile) with env and returns its stderr.
func clusterNetwork(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Path(t, "kind", "cluster-network.sh"))
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(append(os.Environ(), "PATH="+Path(t, "bin")+string(os.PathListSeparator)+os.Getenv("PATH")), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// TestRemoteOverlay: the remote overlay is infra/base with the NetworkPolicies' pod network and
// kubernetes Service set to the cluster's: every `except` is the pod network, the verifier's
// way to the API server on 443 is the Service's address, nothing of Kind's network is left, and
// every other object is the base's as it is.
func TestRemoteOverlay(t *testing.T) {
	if out, err := clusterNetwork(t, remoteNetworkEnv...); err != nil {
		t.Fatalf("kind/cluster-network.sh: %v\n%s", err, out)
	}
	base, remote := Render(t, "infra/base"), Render(t, RemoteOverlay)
	want := map[string]bool{}
	for _, o := range base.Objects {
		want[nodeObjKey(o)] = true
	}
	for _, o := range remote.Objects {
		k := nodeObjKey(o)
		b := base.Find(o.GetKind(), o.GetNamespace(), o.GetName())
		if b == nil {
			t.Errorf("%s: rendered by %s, not by infra/base", k, RemoteOverlay)
			continue
		}
		delete(want, k)
		if o.GetKind() != "NetworkPolicy" && !reflect.DeepEqual(b.Object, o.Object) {
			t.Errorf("%s differs from infra/base's", k)
		}
	}
	for k := range want {
		t.Errorf("%s: rendered by infra/base, missing from %s", k, RemoteOverlay)
	}
	blocks := 0
	for _, o := range remote.OfKind("NetworkPolicy") {
		var np networkingv1.NetworkPolicy
		Typed(t, o, &np)
		var peers []networkingv1.NetworkPolicyPeer
		for _, r := range np.Spec.Ingress {
			peers = append(peers, r.From...)
		}
		for _, r := range np.Spec.Egress {
			peers = append(peers, r.To...)
		}
		for _, p := range peers {
			if p.IPBlock == nil {
				continue
			}
			blocks++
			if p.IPBlock.CIDR != "0.0.0.0/0" && p.IPBlock.CIDR != remoteServiceIP+"/32" {
				t.Errorf("NetworkPolicy %s: ipBlock %s is neither 0.0.0.0/0 nor the kubernetes Service %s", np.Name, p.IPBlock.CIDR, remoteServiceIP)
			}
			if p.IPBlock.CIDR == "0.0.0.0/0" && !reflect.DeepEqual(p.IPBlock.Except, []string{remotePodCIDR}) {
				t.Errorf("NetworkPolicy %s: ipBlock 0.0.0.0/0 excepts %v, want the pod network [%s]", np.Name, p.IPBlock.Except, remotePodCIDR)
			}
		}
	}
	if blocks == 0 {
		t.Errorf("%s renders no ipBlock at all", RemoteOverlay)
	}
	out, _ := RunErr(t, nil, "kubectl", "kustomize", RemoteOverlay)
	for _, kind := range []string{"10.244.", "10.96."} {
		if bytes.Contains(out, []byte(kind)) {
			t.Errorf("%s still renders Kind's network %s*", RemoteOverlay, kind)
		}
	}
	if bytes.Contains(out, []byte("cluster-network")) {
		t.Errorf("%s renders its cluster-network values as an object; they are local configuration", RemoteOverlay)
	}
}

// TestClusterNetworkRefuses: without a pod network it can find or is given, or with a value
// that is not one, the hook fails and says which variable to set; nothing is written.
func TestClusterNetworkRefuses(t *testing.T) {
	file := Path(t, RemoteOverlay, "cluster-network.env")
	before, _ := os.ReadFile(file)
	noCluster := "KUBECTL=" + Path(t, "bin", "kubectl") + " --kubeconfig " + filepath.Join(t.TempDir(), "none") + " --request-timeout=5s"
	for _, c := range []struct {
		env  []string
		says string
	}{
		{[]string{noCluster, "POD_CIDR=", "KUBERNETES_SERVICE_IP=" + remoteServiceIP}, "set POD_CIDR"},
		{[]string{noCluster, "POD_CIDR=10.8.0.0", "KUBERNETES_SERVICE_IP=" + remoteServiceIP}, "POD_CIDR=10.8.0.0 is not an IPv4 CIDR"},
		{[]string{noCluster, "POD_CIDR=" + remotePodCIDR, "KUBERNETES_SERVICE_IP="}, "set KUBERNETES_SERVICE_IP"},
		{[]string{noCluster, "POD_CIDR=" + remotePodCIDR, "KUBERNETES_SERVICE_IP=10.0.0.300"}, "KUBERNETES_SERVICE_IP=10.0.0.300 is not an IPv4 address"},
	} {
		out, err := clusterNetwork(t, c.env...)
		if err == nil || !strings.Contains(out, c.says) {
			t.Errorf("kind/cluster-network.sh with %v: %v, %q; want a failure that says %q", c.env[1:], err, out, c.says)
		}
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Errorf("%s changed by runs that failed", file)
	}
}
