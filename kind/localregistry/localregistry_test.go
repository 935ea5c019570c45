package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/node"
)

// TestKindUpRendersTheNodesHostsTOML: what `make kind-up` gives the Kind
// node, rendered by the same make target with its defaults, is the node's
// own hosts.toml (internal/node.RegistryHostsTOML) for the registry address
// Skaffold pushes to (make's --default-repo), pointing at the registry
// container by name on the kind network; docker.io's sends pulls to the
// Docker Hub cache first; the KEP-1755 ConfigMap publishes the registry's
// address.
func TestKindUpRendersTheNodesHostsTOML(t *testing.T) {
	registry, name := makeVar(t, "KIND_REGISTRY"), makeVar(t, "KIND_REGISTRY_NAME")
	if flags := makeVar(t, "CLUSTER_FLAGS"); !strings.Contains(" "+flags+" ", " --default-repo "+registry+" ") {
		t.Errorf("make's Skaffold flags for Kind are %q, want --default-repo %s", flags, registry)
	}
	dir := t.TempDir()
	runMake(t, makeEnv(), "-s", "kind-registry-config", "KIND_DIR="+dir)

	hosts, err := os.ReadDir(filepath.Join(dir, "certs.d"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Name() != registry || hosts[1].Name() != "docker.io" {
		t.Errorf("certs.d holds %v, want exactly %s (the host of the images' names) and docker.io", hosts, registry)
	}
	got, err := os.ReadFile(filepath.Join(dir, "certs.d", registry, "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := node.RegistryHostsTOML("http://" + name + ":5000"); string(got) != want {
		t.Errorf("hosts.toml for the Kind node:\n%s\nwant the node's renderer's, for the registry container %s on the kind network:\n%s", got, name, want)
	}
	// Docker Hub: the pull-through cache on the kind network first, Docker
	// Hub itself when the cache fails.
	mirror := makeVar(t, "KIND_MIRROR_NAME")
	got, err = os.ReadFile(filepath.Join(dir, "certs.d", "docker.io", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := node.MirrorHostsTOML("https://registry-1.docker.io", "http://"+mirror+":5000"); string(got) != want {
		t.Errorf("docker.io's hosts.toml for the Kind node:\n%s\nwant, for the cache %s on the kind network:\n%s", got, mirror, want)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "local-registry-hosting.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind     string
		Metadata struct{ Name, Namespace string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	var hosting struct{ Host, Help string }
	if err := yaml.Unmarshal([]byte(cm.Data["localRegistryHosting.v1"]), &hosting); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Namespace != "kube-public" || cm.Metadata.Name != "local-registry-hosting" ||
		hosting.Host != registry || hosting.Help == "" {
		t.Errorf("local-registry-hosting.yaml is not the KEP-1755 ConfigMap for %s:\n%s", registry, raw)
	}
}
