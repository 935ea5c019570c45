// Command localregistry writes what the Kind cluster needs to pull from the
// local registry of `make kind-up` (docs/kind.md, "Images: a local registry"):
//
//	localregistry -host 127.0.0.1:5002 -endpoint http://dark-tower-registry:5000 -dir .kind \
//	  -mirror http://dark-tower-docker-io:5000 -upstream https://registry-1.docker.io
//
// writes DIR/certs.d/<host>/hosts.toml, containerd's registry host file (the
// node's own, internal/node.RegistryHostsTOML: one mechanism for both
// clusters), which kind-up copies to /etc/containerd/certs.d in every Kind
// node; DIR/certs.d/docker.io/hosts.toml, which sends the node's Docker Hub
// pulls to the pull-through cache at mirror first and to upstream only when
// the mirror fails; and DIR/local-registry-hosting.yaml, the kube-public
// ConfigMap that tells tools where the registry is (KEP-1755).
//
// Images are named by host (what Skaffold pushes to from the machine); the
// node reaches the registry at endpoint, its address on the `kind` network.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/darktower/devstack/internal/node"
)

func main() {
	host := flag.String("host", "", "the registry as image names and Skaffold's --default-repo give it (host:port)")
	endpoint := flag.String("endpoint", "", "where the Kind node reaches it (http://<container>:<port> on the kind network)")
	dir := flag.String("dir", "", "output directory")
	mirror := flag.String("mirror", "", "the Docker Hub pull-through cache as the Kind node reaches it (http://<container>:<port>)")
	upstream := flag.String("upstream", "https://registry-1.docker.io", "the registry the cache mirrors, where the node goes when the cache fails")
	flag.Parse()
	if *host == "" || *endpoint == "" || *dir == "" || *mirror == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: localregistry -host HOST:PORT -endpoint URL -mirror URL [-upstream URL] -dir DIR")
		os.Exit(2)
	}
	if err := write(*dir, *host, *endpoint, *mirror, *upstream); err != nil {
		fmt.Fprintln(os.Stderr, "localregistry:", err)
		os.Exit(1)
	}
}

// write renders the three files into dir.
func write(dir, host, endpoint, mirror, upstream string) error {
	files := map[string]string{
		filepath.Join(dir, "certs.d", host, "hosts.toml"):        node.RegistryHostsTOML(endpoint),
		filepath.Join(dir, "certs.d", "docker.io", "hosts.toml"): node.MirrorHostsTOML(upstream, mirror),
		filepath.Join(dir, "local-registry-hosting.yaml"):        registryHosting(host),
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// registryHosting is the KEP-1755 ConfigMap, as the node publishes it
// (internal/node/addons.yaml).
func registryHosting(host string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: %q
    help: "https://github.com/kubernetes/enhancements/tree/master/keps/sig-cluster-lifecycle/generic/1755-communicating-a-local-registry"
`, host)
}
