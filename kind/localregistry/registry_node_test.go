//go:build node

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/mounts"
	"github.com/darktower/devstack/internal/testsupport"
)

// TestKindRegistry runs the registry steps of `make kind-up` (the make
// targets themselves) against a real Docker engine: Debian's dockerd, our
// own instance. No Kind cluster can run here, and no image can be pulled,
// so the registry image is built FROM scratch around bin/registry (static)
// (KIND_REGISTRY_IMAGE overrides the pinned default), and the Kind node is
// stood in for by a container on the kind network whose network namespace
// runs Debian's containerd with the Kind config's registry patch.
//
//   - the registry starts once, is reused by the next run, sits on the kind
//     network once that exists, and keeps its images across a restart and
//     a re-creation of its container (named volume);
//   - an image Skaffold's builder pushed (--default-repo from make) is
//     pulled by containerd through the hosts.toml make rendered: from the
//     node's network 127.0.0.1:<port> is not the registry, only the name
//     in hosts.toml, resolved by Docker's DNS on the kind network, is;
//   - kind-down keeps the registry, REGISTRY=1 removes it with its volume,
//     and clean-registry removes it too.
func TestKindRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (dockerd, containerd, network namespaces): run `make test-kind-registry` as root")
	}
	root := testsupport.ModuleRoot(t)
	bin := os.Getenv("BIN_DIR")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	for _, tool := range []string{"registry", "skaffold", "kind"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			t.Fatalf("%s: run `make test-kind-registry`, which builds it", err)
		}
	}
	dir, err := os.MkdirTemp("/tmp", "dtkr") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	d := startDocker(t, dir)
	image := d.buildRegistryImage(t, filepath.Join(bin, "registry"))
	port := strconv.Itoa(testsupport.FreePort(t))
	registry := "127.0.0.1:" + port
	kindDir := filepath.Join(dir, "kind")
	name, volume := makeVar(t, "KIND_REGISTRY_NAME"), makeVar(t, "KIND_REGISTRY_VOLUME")
	mirror, mirrorVolume := makeVar(t, "KIND_MIRROR_NAME"), makeVar(t, "KIND_MIRROR_VOLUME")
	network := makeVar(t, "KIND_NETWORK")
	// The local registry stands in for Docker Hub behind the cache: nothing
	// leaves the machine.
	vars := []string{"KIND_REGISTRY_IMAGE=" + image, "KIND_REGISTRY_PORT=" + port, "KIND_DIR=" + kindDir,
		"KIND_MIRROR_UPSTREAM=http://" + name + ":5000"}
	env := makeEnv(append(d.env, "KUBECONFIG="+filepath.Join(dir, "kubeconfig"))...)
	kindMake := func(target string, extra ...string) string {
		t.Helper()
		out := runMake(t, env, append(append([]string{target}, vars...), extra...)...)
		t.Logf("make %s:\n%s", target, out)
		return out
	}

	// Started once, then reused.
	kindMake("kind-registry")
	first := d.container(t, name)
	if !first.State.Running || first.HostConfig.RestartPolicy.Name != "always" || first.Config.Image != image {
		t.Fatalf("registry container: running %v, restart policy %q, image %q; want running, always, %s",
			first.State.Running, first.HostConfig.RestartPolicy.Name, first.Config.Image, image)
	}
	if b := first.HostConfig.PortBindings["5000/tcp"]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != port {
		t.Errorf("registry port bindings %+v, want only 127.0.0.1:%s", first.HostConfig.PortBindings, port)
	}
	if len(first.Mounts) != 1 || first.Mounts[0].Type != "volume" || first.Mounts[0].Name != volume || first.Mounts[0].Destination != "/var/lib/registry" {
		t.Errorf("registry mounts %+v, want volume %s at /var/lib/registry", first.Mounts, volume)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.runErr("logs", "--tail", "40", mirror)
			t.Logf("--- %s log (tail) ---\n%s", mirror, out)
		}
	})
	cache := d.container(t, mirror)
	if !cache.State.Running || cache.HostConfig.RestartPolicy.Name != "always" || len(cache.HostConfig.PortBindings) != 0 ||
		len(cache.Mounts) != 1 || cache.Mounts[0].Name != mirrorVolume || !slices.Contains(cache.Config.Env, "REGISTRY_PROXY_REMOTEURL=http://"+name+":5000") {
		t.Errorf("Docker Hub cache: running %v, restart policy %q, ports %v, mounts %+v, env %q; want running, always, no host port, volume %s, the upstream of KIND_MIRROR_UPSTREAM",
			cache.State.Running, cache.HostConfig.RestartPolicy.Name, cache.HostConfig.PortBindings, cache.Mounts, cache.Config.Env, mirrorVolume)
	}
	if out := kindMake("kind-registry"); !strings.Contains(out, "reused") {
		t.Errorf("second make kind-registry did not say it reused the registry")
	}
	if again := d.container(t, name); again.ID != first.ID || again.State.StartedAt != first.State.StartedAt {
		t.Errorf("second make kind-registry replaced or restarted the registry (%s started %s, before %s started %s)",
			again.ID, again.State.StartedAt, first.ID, first.State.StartedAt)
	}

	// kind create cluster makes the kind network; kind-up then connects the
	// registry to it (the same recipe as make kind-registry's).
	d.run(t, "network", "create", network)
	kindMake("kind-registry")
	onKind := d.container(t, name)
	if _, ok := onKind.NetworkSettings.Networks[network]; !ok || onKind.ID != first.ID {
		t.Fatalf("registry on networks %v (container %s, first %s), want it on %s, the same container", keys(onKind.NetworkSettings.Networks), onKind.ID, first.ID, network)
	}
	if nets := d.container(t, mirror).NetworkSettings.Networks; !hasKey(nets, network) {
		t.Fatalf("Docker Hub cache on networks %v, want it on %s", keys(nets), network)
	}

	// Skaffold's builder pushes, with the default repo make gives it.
	ref := d.skaffoldPush(t, filepath.Join(bin, "skaffold"), dir, makeDefaultRepo(t, vars))
	if !strings.HasPrefix(ref, registry+"/") {
		t.Fatalf("skaffold built %s, want it under %s", ref, registry)
	}
	tagged, _, _ := strings.Cut(ref, "@")
	wantID := strings.TrimSpace(d.run(t, "image", "inspect", "-f", "{{.Id}}", tagged))

	// containerd pulls it as a Kind node would, through make's hosts.toml.
	kindMake("kind-registry-config")
	c := d.startNodeContainerd(t, dir, image, network, filepath.Join(kindDir, "certs.d"))
	if got := c.pull(t, tagged); got != wantID {
		t.Errorf("containerd pulled %s as %s, Docker built %s", tagged, got, wantID)
	}

	// A restart keeps the images: the registry stopped, then started again
	// by make; its container removed, then created again on the volume.
	repo, tag, _ := strings.Cut(strings.TrimPrefix(tagged, registry+"/"), ":")
	d.run(t, "stop", name)
	if out := kindMake("kind-registry"); !strings.Contains(out, "started again") {
		t.Errorf("make kind-registry did not start the stopped registry again")
	}
	waitManifest(t, registry, repo, tag)
	d.run(t, "rm", "-f", name)
	kindMake("kind-registry")
	if re := d.container(t, name); re.ID == first.ID {
		t.Errorf("the removed registry container is still there")
	}
	waitManifest(t, registry, repo, tag)

	// kind-down keeps the registry; REGISTRY=1 removes it and its volume,
	// and so does clean-registry.
	kindMake("kind-down")
	d.container(t, name)
	kindMake("kind-down", "REGISTRY=1")
	d.gone(t, name, volume)
	d.gone(t, mirror, mirrorVolume)
	kindMake("kind-registry")
	kindMake("clean-registry")
	d.gone(t, name, volume)
	d.gone(t, mirror, mirrorVolume)
}

// makeDefaultRepo is the --default-repo make passes Skaffold for Kind.
func makeDefaultRepo(t *testing.T, vars []string) string {
	t.Helper()
	flags := strings.Fields(makeVar(t, "CLUSTER_FLAGS", vars...))
	for i, f := range flags {
		if f == "--default-repo" && i+1 < len(flags) {
			return flags[i+1]
		}
	}
	t.Fatalf("make passes Skaffold no --default-repo for Kind: %v", flags)
	return ""
}

// waitManifest waits for the registry to serve repo:tag's manifest.
func waitManifest(t *testing.T, registry, repo, tag string) {
	t.Helper()
	url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", registry, repo, tag)
	testsupport.Eventually(t, 30*time.Second, "the registry serves "+repo+":"+tag, func() error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// docker is our own Debian dockerd: its own data and exec roots, socket and
// bridge, no iptables rules (a node test on the same machine checks the
// host's iptables for leftovers), no IP forwarding or masquerade.
type docker struct {
	env []string // DOCKER_HOST, and PATH with Debian's client first
	cmd *exec.Cmd
}

const dockerBridge = "dtkreg0"

func startDocker(t *testing.T, dir string) *docker {
	t.Helper()
	root := filepath.Join(dir, "docker")
	pathDir := filepath.Join(dir, "path")
	for _, p := range []string{root, pathDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The newer /usr/local/bin/docker client lacks buildx; Debian's has
	// BuildKit built in (../shared/TOOLING.md).
	if err := os.Symlink("/usr/bin/docker", filepath.Join(pathDir, "docker")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "docker.sock")
	d := &docker{env: []string{"DOCKER_HOST=unix://" + sock, "PATH=" + pathDir + ":" + os.Getenv("PATH")}}

	// Its default bridge is ours, not docker0, which is the node's to check.
	if out, err := exec.Command("ip", "link", "show", dockerBridge).CombinedOutput(); err == nil {
		t.Fatalf("interface %s exists already (a previous run's?):\n%s", dockerBridge, out)
	}
	for _, args := range [][]string{
		{"link", "add", dockerBridge, "type", "bridge"},
		{"addr", "add", "10.250.251.1/24", "dev", dockerBridge},
		{"link", "set", dockerBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", dockerBridge).Run()
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command("/usr/sbin/dockerd",
		"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(root, "docker.pid"),
		"--config-file", filepath.Join(root, "daemon.json"),
		"--bridge", dockerBridge, "--iptables=false", "--ip-masq=false", "--ip-forward=false",
		"--storage-driver", "overlay2")
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		exec.Command("ip", "link", "del", dockerBridge).Run()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t, dir); log.Close() })
	testsupport.Eventually(t, 60*time.Second, "dockerd answers", func() error {
		_, err := d.runErr("info")
		return err
	})
	return d
}

// stop removes what the engine made (containers, networks and their
// bridges), stops it by pid, and then removes anything left under dir
// (mounts, processes) and our bridge, reporting what it had to clean.
func (d *docker) stop(t *testing.T, dir string) {
	var bridges []string
	if ids, err := d.runErr("ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		if out, err := d.runErr(append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
			t.Errorf("docker rm -f: %v\n%s", err, out)
		}
	}
	if ids, err := d.runErr("network", "ls", "-q", "--no-trunc", "--filter", "type=custom"); err == nil {
		for _, id := range strings.Fields(ids) {
			bridges = append(bridges, "br-"+id[:12])
			if out, err := d.runErr("network", "rm", id); err != nil {
				t.Errorf("docker network rm %s: %v\n%s", id, err, out)
			}
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Errorf("dockerd (pid %d) did not stop within 60s of SIGTERM: killed", d.cmd.Process.Pid)
		_ = d.cmd.Process.Kill()
		<-done
	}
	killUnder(t, dir)
	if left, err := mounts.Under(dir); err == nil {
		for i := len(left) - 1; i >= 0; i-- {
			if err := syscall.Unmount(left[i], syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", left[i], err)
			}
		}
	}
	for _, br := range append(bridges, dockerBridge) {
		if exec.Command("ip", "link", "show", br).Run() == nil {
			if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
				t.Errorf("ip link del %s: %v\n%s", br, err, out)
			}
		}
	}
	if t.Failed() {
		if b, err := os.ReadFile(filepath.Join(dir, "dockerd.log")); err == nil {
			t.Logf("--- dockerd log (tail) ---\n%s", tail(b, 4000))
		}
	}
}

// killUnder kills (and reports) any process whose command line names dir:
// an engine child that outlived the engine.
func killUnder(t *testing.T, dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		t.Errorf("process %d outlived the engine: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (d *docker) runErr(args ...string) (string, error) {
	cmd := exec.Command("/usr/bin/docker", args...)
	cmd.Env = append(os.Environ(), d.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (d *docker) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.runErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// containerInfo is what the test reads of `docker inspect`.
type containerInfo struct {
	ID     string `json:"Id"`
	Config struct {
		Image string
		Env   []string
	}
	State struct {
		Running   bool
		Pid       int
		StartedAt string
	}
	HostConfig struct {
		RestartPolicy struct{ Name string }
		PortBindings  map[string][]struct{ HostIP, HostPort string }
	}
	Mounts []struct {
		Type, Name, Destination string
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
	ResolvConfPath string
}

func (d *docker) container(t *testing.T, name string) containerInfo {
	t.Helper()
	var cs []containerInfo
	if err := json.Unmarshal([]byte(d.run(t, "inspect", "--type", "container", name)), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	return cs[0]
}

// gone fails unless the container and the volume are both removed.
func (d *docker) gone(t *testing.T, name, volume string) {
	t.Helper()
	if _, err := d.runErr("inspect", "--type", "container", name); err == nil {
		t.Errorf("container %s is still there", name)
	}
	if _, err := d.runErr("volume", "inspect", volume); err == nil {
		t.Errorf("volume %s is still there", volume)
	}
}

// buildRegistryImage builds the CNCF registry's image locally: the same
// command, configuration path, port and storage as registry:3.
func (d *docker) buildRegistryImage(t *testing.T, registryBin string) string {
	t.Helper()
	ctx := filepath.Join(t.TempDir(), "registry-image")
	b, err := os.ReadFile(registryBin)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"registry": string(b),
		"config.yml": `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
`,
		"Dockerfile": `FROM scratch
COPY registry /bin/registry
COPY config.yml /etc/distribution/config.yml
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/bin/registry"]
CMD ["serve", "/etc/distribution/config.yml"]
`,
	}
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const image = "dark-tower-test/registry:local"
	d.run(t, "build", "-q", "-t", image, ctx)
	return image
}

// skaffoldPush builds a one-file image with Skaffold's local builder as our
// skaffold.yaml configures it (BuildKit, push: true, inputDigest tags) and
// returns the reference Skaffold pushed.
func (d *docker) skaffoldPush(t *testing.T, skaffold, dir, defaultRepo string) string {
	t.Helper()
	app := filepath.Join(dir, "app")
	files := map[string]string{
		"skaffold.yaml": `apiVersion: skaffold/v4beta14
kind: Config
build:
  tagPolicy:
    inputDigest: {}
  local:
    push: true
    useBuildkit: true
  artifacts:
    - image: dark-tower/probe
      context: .
      docker:
        dockerfile: Dockerfile
`,
		"Dockerfile": "FROM scratch\nCOPY probe.txt /probe.txt\n",
		"probe.txt":  "pushed by skaffold, pulled by containerd\n",
	}
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "build.json")
	cmd := exec.Command(skaffold, "build", "--default-repo", defaultRepo, "--file-output", out)
	cmd.Dir = app
	cmd.Env = append(os.Environ(), append(d.env, "SKAFFOLD_UPDATE_CHECK=false", "SKAFFOLD_INTERACTIVE=false",
		"KUBECONFIG="+filepath.Join(dir, "kubeconfig"))...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skaffold build: %v\n%s", err, b)
	}
	var built struct {
		Builds []struct{ ImageName, Tag string }
	}
	b, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(b, &built)
	}
	if err != nil || len(built.Builds) != 1 {
		t.Fatalf("skaffold build output %s: %v %s", out, err, b)
	}
	return built.Builds[0].Tag
}

// nodeContainerd is Debian's containerd in the network namespace of a
// container on the kind network (where a Kind node's containerd is), with
// that container's resolv.conf (Docker's DNS, which knows the registry by
// name) in a mount namespace of its own, and the registry patch of
// kind/kind-config.yaml pointed at the rendered certs.d.
type nodeContainerd struct {
	sock string
}

func (d *docker) startNodeContainerd(t *testing.T, dir, image, network, certs string) *nodeContainerd {
	t.Helper()
	d.run(t, "run", "-d", "--name", "kind-node-standin", "--network", network, image)
	node := d.container(t, "kind-node-standin")

	raw, err := os.ReadFile(filepath.Join(testsupport.ModuleRoot(t), "kind", "kind-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ContainerdConfigPatches []string `yaml:"containerdConfigPatches"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	nodeCerts := makeVar(t, "KIND_NODE_CERTS")
	var patches []string
	for _, p := range cfg.ContainerdConfigPatches {
		if strings.Contains(p, `"`+nodeCerts+`"`) {
			patches = append(patches, strings.ReplaceAll(p, `"`+nodeCerts+`"`, strconv.Quote(certs)))
		}
	}
	if len(patches) != 1 {
		t.Fatalf("kind/kind-config.yaml: want one containerd patch naming %s, got %q", nodeCerts, cfg.ContainerdConfigPatches)
	}
	root := filepath.Join(dir, "containerd")
	c := &nodeContainerd{sock: filepath.Join(root, "containerd.sock")}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

%s
`, filepath.Join(root, "root"), filepath.Join(root, "state"), c.sock, filepath.Join(root, "opt"), patches[0])
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(root, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(node.State.Pid)+"/ns/net", "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount --bind "$1" /etc/resolv.conf && exec containerd --config "$2"`, "sh", node.ResolvConfPath, cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("containerd (pid %d) did not stop within 30s of SIGTERM: killed", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			if b, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("--- containerd log (tail) ---\n%s", tail(b, 4000))
			}
		}
	})
	testsupport.Eventually(t, 60*time.Second, "containerd's socket", func() error {
		select {
		case <-done:
			return fmt.Errorf("containerd exited")
		default:
		}
		_, err := os.Stat(c.sock)
		return err
	})
	return c
}

// pull asks containerd's CRI image service, as the kubelet does, to pull
// ref, and returns the image reference (ID) it reports. The two small
// messages are encoded by hand: runtime.v1 PullImageRequest{image:
// ImageSpec{image: ref}} and PullImageResponse{image_ref}.
func (c *nodeContainerd) pull(t *testing.T, ref string) string {
	t.Helper()
	resp := c.imageCall(t, "PullImage", ref)
	for len(resp) > 0 {
		num, typ, n := protowire.ConsumeTag(resp)
		if n < 0 {
			break
		}
		resp = resp[n:]
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeString(resp)
			return v
		}
		if n = protowire.ConsumeFieldValue(num, typ, resp); n < 0 {
			break
		}
		resp = resp[n:]
	}
	t.Fatalf("CRI PullImage %s: no image_ref in the response", ref)
	return ""
}

// imageCall calls method of runtime.v1.ImageService with a request whose
// field 1 is ImageSpec{image: ref}, and returns the encoded response.
func (c *nodeContainerd) imageCall(t *testing.T, method, ref string) []byte {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	spec := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), ref)
	req := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), spec)
	var resp []byte
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := conn.Invoke(ctx, "/runtime.v1.ImageService/"+method, &req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatalf("CRI %s %s: %v", method, ref, err)
	}
	return resp
}

// rawCodec passes already encoded protobuf messages through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }
