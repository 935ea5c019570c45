package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/procs"
)

// component is one host process of the node.
type component struct {
	name  string
	path  string
	args  []string
	ready func(ctx context.Context) error
}

// Up starts what is not running, in dependency order, waits until the node is
// Ready with cluster DNS, and is safe to repeat.
func (n *Node) Up(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("node: must run as root (it starts containerd, the kubelet and iptables rules)")
	}
	if err := n.preflight(); err != nil {
		return err
	}
	for _, d := range []string{"run", "logs", "kubeconfigs", "cni/net.d", "cni/ipam", "volumes"} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := n.saveHostState(); err != nil {
		return err
	}
	if err := n.prepareHost(); err != nil {
		return err
	}
	creds, err := n.ensurePKI()
	if err != nil {
		return err
	}
	for _, u := range users {
		kc, err := n.kubeconfig(u.name, creds.tokens[u.name])
		if err != nil {
			return err
		}
		path := n.path("kubeconfigs", u.name)
		if u.name == "admin" {
			path = n.Kubeconfig()
		}
		if err := writeFile(path, kc, 0o600); err != nil {
			return err
		}
	}
	api := n.apiClient(creds.tokens["admin"])
	if err := writeFile(n.path("registry", "config.yml"), n.registryConfig(), 0o644); err != nil {
		return err
	}

	// Stage 1: state store, API server, registry.
	if err := n.start(ctx, n.etcd(), n.apiserver(api), n.registry()); err != nil {
		return err
	}
	// Stage 2: base images (the pause image is containerd's sandbox image).
	refs, err := n.ensureImages(ctx)
	if err != nil {
		return err
	}
	// Skaffold builds with BuildKit through the docker command: Debian's
	// client (20.10) has BuildKit built in, a newer client earlier on PATH
	// needs the buildx plugin, which Debian does not package. The node's
	// make targets put this directory first on PATH.
	if err := os.MkdirAll(n.path("bin"), 0o755); err != nil {
		return err
	}
	if err := os.Remove(n.path("bin", "docker")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Symlink("/usr/bin/docker", n.path("bin", "docker")); err != nil {
		return err
	}
	// The Dockerfiles' base images, for Skaffold's node profile (buildArgs).
	env := fmt.Sprintf("NODE_GO_IMAGE=%s\nNODE_RUNTIME_IMAGE=%s\n", refs.GoBuilder, refs.Runtime)
	if err := writeFile(n.path("skaffold.env"), env, 0o644); err != nil {
		return err
	}
	files := map[string]string{
		n.path("containerd", "config.toml"):                     n.containerdConfig(refs.Pause),
		n.path("containerd", "certs.d", Registry, "hosts.toml"): RegistryHostsTOML("http://" + Registry),
		n.path("cni", "net.d", "10-dark-tower.conflist"):        n.cniConfig(),
		n.path("kubelet", "config.yaml"):                        n.kubeletConfig(),
		n.path("kube-proxy", "config.yaml"):                     n.kubeProxyConfig(),
		n.path("registry", "config.yml"):                        n.registryConfig(),
	}
	for path, content := range files {
		if err := writeFile(path, content, 0o644); err != nil {
			return err
		}
	}
	// Stage 3: the rest of the control plane, the runtime, the Docker engine.
	if err := n.start(ctx, n.controllerManager(), n.scheduler(), n.containerd(), n.dockerd()); err != nil {
		return err
	}
	// Stage 4: the node agents; kube-router's firewall needs the Node
	// object the kubelet registers, so it comes once that exists.
	if err := n.start(ctx, n.kubelet(), n.kubeProxy()); err != nil {
		return err
	}
	if err := n.waitRegistered(ctx); err != nil {
		return err
	}
	if err := n.start(ctx, n.kubeRouter()); err != nil {
		return err
	}
	// Stage 5: cluster add-ons, then wait for the node and DNS.
	if err := n.bootstrap(ctx, refs); err != nil {
		return err
	}
	n.logf("ready: kubectl --kubeconfig %s (context %s); registry %s; DOCKER_HOST=%s", n.Kubeconfig(), ContextName, Registry, n.DockerHost())
	return nil
}

// waitRegistered waits until the kubelet has registered the Node.
func (n *Node) waitRegistered(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if _, err := n.kubectl(ctx, nil, "get", "node", NodeName); err == nil {
			return nil
		}
		if _, ok := n.procs().Running("kubelet"); !ok {
			return fmt.Errorf("node: the kubelet exited before registering the node; the end of its log:\n%s", tail(n.procs().LogFile("kubelet"), 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: the kubelet did not register node %s within 2 minutes; its log: %s", NodeName, n.procs().LogFile("kubelet"))
		case <-time.After(time.Second):
		}
	}
}

// start launches the components that are not running, then waits for each to
// be ready. A process that exits while being waited for is reported at once,
// with the end of its log.
func (n *Node) start(ctx context.Context, cs ...component) error {
	p := n.procs()
	for _, c := range cs {
		if _, ok := p.Running(c.name); ok {
			continue
		}
		if _, err := p.Start(procs.Proc{Name: c.name, Path: c.path, Args: c.args}); err != nil {
			return err
		}
		n.logf("started %s", c.name)
	}
	for _, c := range cs {
		if err := n.waitReady(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) waitReady(ctx context.Context, c component) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var last error
	for {
		if pid, ok := n.procs().Running(c.name); !ok {
			return fmt.Errorf("node: %s (pid %d) exited while starting; the end of %s:\n%s", c.name, pid, n.procs().LogFile(c.name), tail(n.procs().LogFile(c.name), 15))
		}
		if last = c.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: %s not ready: %v; its log: %s", c.name, last, n.procs().LogFile(c.name))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// httpReady answers nil when url returns 200.
func httpReady(client *http.Client, url string, header http.Header) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

var plainHTTP = &http.Client{Timeout: 2 * time.Second}

// insecureLocal is for the components' own self-signed health endpoints on
// loopback, which only say whether they are alive.
var insecureLocal = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec

type apiClient struct {
	http  *http.Client
	base  string
	token string
}

func (n *Node) apiClient(token string) *apiClient {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(n.pki("ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &apiClient{
		http:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		base:  fmt.Sprintf("https://%s:%d", n.IP, APIPort),
		token: token,
	}
}

func socketReady(path string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func (n *Node) etcd() component {
	return component{name: "etcd", path: "/usr/bin/etcd", args: []string{
		"--name", NodeName, "--data-dir", n.path("etcd"),
		"--listen-client-urls", etcdClientURL, "--advertise-client-urls", etcdClientURL,
		"--listen-peer-urls", etcdPeerURL, "--initial-advertise-peer-urls", etcdPeerURL,
		"--initial-cluster", NodeName + "=" + etcdPeerURL,
		"--listen-metrics-urls", "http://127.0.0.1:12381",
		"--logger", "zap", "--log-outputs", "stderr",
	}, ready: httpReady(plainHTTP, etcdClientURL+"/health", nil)}
}

func (n *Node) apiserver(api *apiClient) component {
	return component{name: "kube-apiserver", path: n.bin("kube-apiserver"), args: []string{
		"--etcd-servers", etcdClientURL,
		"--bind-address", n.IP, "--advertise-address", n.IP, "--secure-port", strconv.Itoa(APIPort),
		"--tls-cert-file", n.pki("apiserver.crt"), "--tls-private-key-file", n.pki("apiserver.key"),
		"--client-ca-file", n.pki("ca.crt"),
		"--token-auth-file", n.pki("tokens.csv"),
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--service-cluster-ip-range", ServiceCIDR,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", n.pki("sa.pub"),
		"--service-account-signing-key-file", n.pki("sa.key"),
		"--kubelet-client-certificate", n.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key", n.pki("apiserver-kubelet-client.key"),
		// The node's name does not resolve: reach the kubelet by its address.
		"--kubelet-preferred-address-types", "InternalIP",
		"--allow-privileged=true",
		"--profiling=false",
	}, ready: httpReady(api.http, api.base+"/readyz", http.Header{"Authorization": {"Bearer " + api.token}})}
}

func (n *Node) registry() component {
	return component{name: "registry", path: n.bin("registry"), args: []string{"serve", n.path("registry", "config.yml")},
		ready: httpReady(plainHTTP, "http://"+Registry+"/v2/", nil)}
}

func (n *Node) controllerManager() component {
	return component{name: "kube-controller-manager", path: n.bin("kube-controller-manager"), args: []string{
		"--kubeconfig", n.path("kubeconfigs", "controller-manager"),
		"--authentication-kubeconfig", n.path("kubeconfigs", "controller-manager"),
		"--authorization-kubeconfig", n.path("kubeconfigs", "controller-manager"),
		"--leader-elect=false", "--bind-address", "127.0.0.1",
		"--use-service-account-credentials",
		"--service-account-private-key-file", n.pki("sa.key"),
		"--root-ca-file", n.pki("ca.crt"),
		"--cluster-signing-cert-file", n.pki("ca.crt"), "--cluster-signing-key-file", n.pki("ca.key"),
		"--allocate-node-cidrs", "--cluster-cidr", PodCIDR, "--node-cidr-mask-size", "24",
		"--service-cluster-ip-range", ServiceCIDR,
		"--profiling=false",
	}, ready: httpReady(insecureLocal, "https://127.0.0.1:10257/healthz", nil)}
}

func (n *Node) scheduler() component {
	return component{name: "kube-scheduler", path: n.bin("kube-scheduler"), args: []string{
		"--kubeconfig", n.path("kubeconfigs", "scheduler"),
		"--authentication-kubeconfig", n.path("kubeconfigs", "scheduler"),
		"--authorization-kubeconfig", n.path("kubeconfigs", "scheduler"),
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--profiling=false",
	}, ready: httpReady(insecureLocal, "https://127.0.0.1:10259/healthz", nil)}
}

func (n *Node) containerd() component {
	return component{name: "containerd", path: "/usr/bin/containerd", args: []string{"--config", n.path("containerd", "config.toml")},
		ready: socketReady(n.containerdSocket())}
}

// dockerd builds Skaffold's images. It gets no bridge and touches no iptables
// rules: builds use the host's network (the node profile's `network: host`),
// so there is no docker0, no DOCKER chains and no FORWARD policy to undo.
// Its data (BuildKit's cache mounts: the Go module and build caches of our
// Dockerfiles) lives in the tools cache, so a new node builds warm.
func (n *Node) dockerd() component {
	sock := n.path("docker", "docker.sock")
	return component{name: "dockerd", path: "/usr/sbin/dockerd", args: []string{
		"--data-root", n.dockerData(), "--exec-root", n.path("docker", "exec"),
		"--host", "unix://" + sock, "--pidfile", n.path("docker", "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
		"--storage-driver", "overlay2",
	}, ready: socketReady(sock)}
}

func (n *Node) dockerData() string { return filepath.Join(n.Cache, "node-docker") }

func (n *Node) kubelet() component {
	return component{name: "kubelet", path: n.bin("kubelet"), args: []string{
		"--config", n.path("kubelet", "config.yaml"),
		"--kubeconfig", n.path("kubeconfigs", "kubelet"),
		"--root-dir", n.path("kubelet", "root"),
		"--hostname-override", NodeName, "--node-ip", n.IP,
	}, ready: httpReady(plainHTTP, "http://127.0.0.1:10248/healthz", nil)}
}

func (n *Node) kubeProxy() component {
	return component{name: "kube-proxy", path: n.bin("kube-proxy"), args: []string{"--config", n.path("kube-proxy", "config.yaml")},
		ready: httpReady(plainHTTP, "http://127.0.0.1:10249/metrics", nil)}
}

// kubeRouter runs only kube-router's firewall: NetworkPolicy with iptables
// and ipset, which this kernel has (it lacks the nftables queue that
// kube-network-policies needs).
func (n *Node) kubeRouter() component {
	return component{name: "kube-router", path: n.bin("kube-router"), args: []string{
		"--kubeconfig", n.path("kubeconfigs", "kube-router"),
		"--hostname-override", NodeName,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
		"--enable-ipv6=false",
		"--health-port", "20244", "--metrics-port", "0",
	}, ready: httpReady(plainHTTP, "http://127.0.0.1:20244/healthz", nil)}
}

func (n *Node) preflight() error {
	var missing []string
	for _, p := range []string{
		n.bin("kube-apiserver"), n.bin("kube-controller-manager"), n.bin("kube-scheduler"), n.bin("kubelet"),
		n.bin("kube-proxy"), n.bin("kubectl"), n.bin("registry"), n.bin("kube-router"), n.bin("coredns"),
		"/usr/bin/etcd", "/usr/bin/containerd", "/usr/sbin/runc", "/usr/sbin/dockerd", "/usr/bin/docker",
		"/usr/sbin/iptables", "/usr/sbin/ipset", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap",
	} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("node: missing %s; `make node-up` builds the pinned commands into bin/ and installs Debian's packages", strings.Join(missing, ", "))
	}
	return nil
}
