//go:build node

// The Skaffold path for real: `make node-up`, `make run PROFILE=node` (Skaffold
// v2.24 building with the node's Docker engine, pushing to its registry,
// deploying with kubectl, the hooks waiting for the migration and running the
// verifier Job), NetworkPolicy enforced by kube-router, a second iteration,
// `make verify`, faults in the cluster, and a clean `make node-down`.
//
// Root and real daemons: `make test-node` runs it, never `make test`.
// Nothing is skipped: a missing prerequisite fails.
package node_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/node"
	"github.com/darktower/devstack/internal/procs"
	"github.com/darktower/devstack/verifier/config"
	"github.com/darktower/devstack/verifier/probe"
)

// run is one node under test: the repository (or a copy of it), the node's
// state directory and a log of every command.
type run struct {
	t    testing.TB
	repo string // where make and Skaffold run
	bin  string // the pinned tools (the checkout's bin/)
	dir  string // NODE_DIR
	log  *os.File
}

// newRun prepares a node's state directory; whatever happens, the node is
// brought down at t's end and must leave nothing behind.
func newRun(t testing.TB) *run {
	if os.Geteuid() != 0 {
		t.Fatal("the node tests need root (they start containerd, the kubelet and iptables rules)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dt-node-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "test.log"))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, repo: repo, bin: filepath.Join(repo, "bin"), dir: dir, log: log}
	t.Logf("node state %s; every command's output: %s", dir, log.Name())
	// Whatever happens, the node comes down and leaves nothing behind.
	t.Cleanup(func() {
		r.t = t
		if _, code := r.make(5*time.Minute, "node-down"); code != 0 {
			t.Errorf("make node-down: exit %d", code)
		}
		r.checkNothingLeft()
		r.removeState()
	})
	return r
}

// removeState deletes the node's state (images, volumes, daemons' data:
// about 1.3 GB) once the node came down cleanly, and keeps test.log. After
// a failure, or with anything still mounted below it, all of it stays for
// reading.
func (r *run) removeState() {
	if r.t.Failed() {
		r.t.Logf("node state kept for reading: %s", r.dir)
		return
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), r.dir) {
		return
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.t.Error(err)
		return
	}
	for _, e := range entries {
		if e.Name() != "test.log" {
			if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
				r.t.Errorf("removing the node's state: %v", err)
			}
		}
	}
}

// make runs a make target in r.repo with the node's settings and returns its
// combined output and exit status.
func (r *run) make(timeout time.Duration, args ...string) (string, int) {
	r.t.Helper()
	return r.cmd(timeout, "make", append([]string{"-C", r.repo, "--no-print-directory", "NODE_DIR=" + r.dir, "BIN=" + r.bin}, args...)...)
}

func (r *run) cmd(timeout time.Duration, name string, args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = r.repo
	var buf bytes.Buffer
	fmt.Fprintf(r.log, "\n$ %s %s\n", name, strings.Join(args, " "))
	c.Stdout = io.MultiWriter(&buf, r.log)
	c.Stderr = c.Stdout
	start := time.Now()
	err := c.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	fmt.Fprintf(r.log, "# exit %d after %s\n", code, time.Since(start).Round(time.Second))
	r.t.Logf("%s %s: exit %d after %s", name, strings.Join(args, " "), code, time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		r.t.Errorf("%s %s: did not finish within %s", name, strings.Join(args, " "), timeout)
	}
	return buf.String(), code
}

// mustMake fails the test unless the target exits 0.
func (r *run) mustMake(timeout time.Duration, args ...string) string {
	r.t.Helper()
	out, code := r.make(timeout, args...)
	if code != 0 {
		r.t.Fatalf("make %s: exit %d; the end of its output:\n%s", strings.Join(args, " "), code, lastLines(out, 40))
	}
	return out
}

func (r *run) kubectl(args ...string) (string, error) {
	r.t.Helper()
	out, code := r.cmd(2*time.Minute, filepath.Join(r.bin, "kubectl"), append([]string{"--kubeconfig", filepath.Join(r.dir, "kubeconfig")}, args...)...)
	if code != 0 {
		return out, fmt.Errorf("kubectl %s: exit %d: %s", strings.Join(args, " "), code, lastLines(out, 10))
	}
	return out, nil
}

func (r *run) mustKubectl(args ...string) string {
	r.t.Helper()
	out, err := r.kubectl(args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clusterChecks are the checks the node's verifier configuration builds
// (infra/overlays/node/verifier-config.yaml), every one of which must pass on
// a healthy node. They come from the verifier's own list (probe.Checks), so
// a check added there is expected here without an edit.
func clusterChecks(t testing.TB, repo string) []string {
	t.Helper()
	path := filepath.Join(repo, "infra/overlays/node/verifier-config.yaml")
	objs, err := manifest.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := manifest.Set{Source: path, Objects: objs}.Data("ConfigMap", "dark-tower", "verifier-config")
	if err != nil || data["verifier.yaml"] == "" {
		t.Fatalf("%s: no ConfigMap dark-tower/verifier-config with verifier.yaml (%v)", path, err)
	}
	// Defaults for the ${VAR:-default} references; the secrets are not read.
	cfg, err := config.Parse("verifier-config.yaml", []byte(data["verifier.yaml"]), config.Options{
		Lookup: func(string) (string, bool) { return "", false }, CheckIDs: probe.IDs()})
	if err != nil {
		t.Fatalf("the node's verifier configuration: %v", err)
	}
	var ids []string
	for _, c := range probe.Checks(cfg) {
		ids = append(ids, c.ID)
	}
	if len(ids) == 0 {
		t.Fatal("the node's verifier configuration builds no check")
	}
	return ids
}

var resultLine = regexp.MustCompile(`(?m)^(PASS|FAIL|BLOCKED)\s+(\S+)`)

// verdicts reads the verifier's text report: check id -> PASS/FAIL/BLOCKED.
func verdicts(report string) map[string]string {
	out := map[string]string{}
	for _, m := range resultLine.FindAllStringSubmatch(report, -1) {
		out[m[2]] = m[1]
	}
	return out
}

func (r *run) requireAllPass(report string) {
	r.t.Helper()
	v := verdicts(report)
	bad := false
	for _, id := range clusterChecks(r.t, r.repo) {
		if v[id] != "PASS" {
			r.t.Errorf("check %s: %q, want PASS", id, v[id])
			bad = true
		}
	}
	if bad {
		r.t.Fatalf("the verifier's report:\n%s", lastLines(report, 60))
	}
}

// jobPod is the pod whose report verify-cluster.sh streamed.
var jobPod = regexp.MustCompile(`verify-cluster: reading pod (\S+) of job/verifier \(uid (\S+)\)`)

func TestNode(t *testing.T) {
	r := newRun(t)

	// Each step is a subtest; the run's helpers report to it while it runs.
	step := func(name string, f func(t *testing.T)) {
		ok := t.Run(name, func(st *testing.T) {
			r.t = st
			defer func() { r.t = t }()
			f(st)
		})
		if !ok {
			t.FailNow()
		}
	}

	step("node up", func(t *testing.T) {
		r.mustMake(30*time.Minute, "node-up")
		out := r.mustKubectl("get", "node", node.NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if strings.TrimSpace(out) != "True" {
			t.Fatalf("node %s Ready=%q after make node-up", node.NodeName, out)
		}
	})

	step("skaffold run", func(t *testing.T) {
		out := r.mustMake(40*time.Minute, "run", "PROFILE=node")
		for _, want := range []string{"migrate-wait: job/db-migrate completed", "verify-cluster: job/verifier started"} {
			if !strings.Contains(out, want) {
				t.Errorf("the Skaffold run's output lacks %q", want)
			}
		}
		r.requireAllPass(out)
		for _, ns := range []string{"dark-tower", "dark-tower-observability"} {
			for _, kind := range []string{"deployments", "statefulsets"} {
				names := strings.Fields(r.mustKubectl("-n", ns, "get", kind, "-o", "jsonpath={.items[*].metadata.name}"))
				for _, name := range names {
					ready := r.mustKubectl("-n", ns, "get", kind, name, "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas}")
					parts := strings.Split(ready, "/")
					if len(parts) != 2 || parts[0] != parts[1] {
						t.Errorf("%s/%s/%s: ready %s", ns, kind, name, ready)
					}
				}
			}
		}
	})

	var firstUID string
	step("the first report is the first Job's", func(t *testing.T) {
		out, _ := r.verify()
		firstUID = r.jobUID(out)
	})

	step("network policy enforced", func(t *testing.T) {
		img := r.goImage()
		// Postgres's port: refused to a pod the matrix does not name (in
		// dark-tower, and in a namespace without policies, which tests
		// Postgres's own ingress side), open to a caller it allows (AC).
		cases := []struct {
			ns, name string
			want     string
		}{
			{"dark-tower", "netpol-stranger", "REFUSED"},
			{"default", "netpol-outsider", "REFUSED"},
			{"dark-tower", "ac-service", "CONNECTED"},
		}
		for _, c := range cases {
			if got := r.probePostgres(img, c.ns, c.name); got != c.want {
				t.Errorf("pod %s/%s (app.kubernetes.io/name=%s) to postgres.dark-tower:5432: %s, want %s", c.ns, "netpol-probe", c.name, got, c.want)
			}
		}
		// Without the enforcer the verifier's deny path must fail: the check can fail.
		n, err := node.New(r.dir, r.bin, r.cache(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.StopFirewall(); err != nil {
			t.Fatal(err)
		}
		out, code := r.verify(faultDeadline)
		if code == 0 || verdicts(out)["kubernetes.networkpolicy"] != "FAIL" {
			t.Errorf("with kube-router stopped: exit %d, kubernetes.networkpolicy %q; want a failure", code, verdicts(out)["kubernetes.networkpolicy"])
		}
		r.mustMake(10*time.Minute, "node-up") // starts kube-router again
		out, code = r.verify()
		if code != 0 {
			t.Fatalf("after kube-router restarted: exit %d:\n%s", code, lastLines(out, 40))
		}
		r.requireAllPass(out)
	})

	step("second iteration", func(t *testing.T) {
		before := r.mustKubectl("-n", "dark-tower", "get", "deployment/global-controller", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		// The edit is a developer's save in the checkout, undone at the step's end.
		edited := freshVersion("node-test")
		r.editFile("internal/gc/version.go", `const Version = "`+gcVersion(t, r.repo)+`"`, `const Version = "`+edited+`"`)
		out := r.mustMake(30*time.Minute, "run", "PROFILE=node")
		r.requireAllPass(out)
		// Only the image whose inputs changed is built (issue 10).
		if b := built(out); len(b) != 1 || b[0] != "global-controller" {
			t.Errorf("a GC source edit built %v, want [global-controller]", b)
		}
		if uid := r.jobUID(out); uid == firstUID {
			t.Errorf("the second run's report came from the first run's Job (uid %s)", uid)
		}
		after := r.mustKubectl("-n", "dark-tower", "get", "deployment/global-controller", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if after == before {
			t.Errorf("GC's image is still %s after a GC source changed", before)
		}
		// Every GC pod serves the new build (through the API server's proxy:
		// GC's policy admits callers from outside the pod network).
		for i := range 4 {
			_ = i
			got := r.mustKubectl("get", "--raw", "/api/v1/namespaces/dark-tower/services/global-controller:8080/proxy/version")
			if !strings.Contains(got, `"version":"`+edited+`"`) {
				t.Errorf("GET /version through the global-controller Service: %s, want version %s", got, edited)
			}
		}
	})

	step("make verify twice", func(t *testing.T) {
		var uids []string
		for range 2 {
			out, code := r.make(10*time.Minute, "verify")
			if code != 0 {
				t.Fatalf("make verify: exit %d:\n%s", code, lastLines(out, 40))
			}
			r.requireAllPass(out)
			uids = append(uids, r.jobUID(out))
		}
		if uids[0] == uids[1] {
			t.Errorf("both make verify runs printed the report of the Job with uid %s", uids[0])
		}
	})

	step("faults", func(t *testing.T) {
		t.Run("meeting controllers scaled to 0", func(t *testing.T) {
			r.mustKubectl("-n", "dark-tower", "scale", "deployment/meeting-controller", "--replicas=0")
			r.mustKubectl("-n", "dark-tower", "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/name=meeting-controller", "--timeout=120s")
			out, code := r.verify(faultDeadline)
			r.expectFailure(out, code, "gc.registration")
			r.mustKubectl("-n", "dark-tower", "scale", "deployment/meeting-controller", "--replicas=2")
			r.mustKubectl("-n", "dark-tower", "rollout", "status", "deployment/meeting-controller", "--timeout=300s")
		})
		t.Run("the verifier's Redis password wrong", func(t *testing.T) {
			orig := r.mustKubectl("-n", "dark-tower", "get", "secret/redis-credentials", "-o", "jsonpath={.data.REDIS_PASSWORD}")
			wrong := base64.StdEncoding.EncodeToString([]byte("not-the-password"))
			patch := func(v string) {
				r.mustKubectl("-n", "dark-tower", "patch", "secret/redis-credentials", "--type=merge", "-p", `{"data":{"REDIS_PASSWORD":"`+v+`"}}`)
			}
			patch(wrong)
			defer patch(orig)
			out, code := r.verify(faultDeadline)
			r.expectFailure(out, code, "redis.reachable")
			if strings.Contains(out, "not-the-password") {
				t.Errorf("the verifier's report shows the password it was given")
			}
		})
		t.Run("postgres scaled to 0", func(t *testing.T) {
			r.mustKubectl("-n", "dark-tower", "scale", "statefulset/postgres", "--replicas=0")
			r.mustKubectl("-n", "dark-tower", "wait", "--for=delete", "pod/postgres-0", "--timeout=120s")
			out, code := r.verify(faultDeadline)
			r.expectFailure(out, code, "postgres.reachable")
			if v := verdicts(out)["postgres.schema"]; v != "BLOCKED" {
				t.Errorf("postgres.schema: %q with Postgres down, want BLOCKED", v)
			}
			r.mustKubectl("-n", "dark-tower", "scale", "statefulset/postgres", "--replicas=1")
			r.mustKubectl("-n", "dark-tower", "rollout", "status", "statefulset/postgres", "--timeout=300s")
		})
		out, code := r.verify()
		if code != 0 {
			t.Fatalf("after the faults were undone: exit %d:\n%s", code, lastLines(out, 40))
		}
		r.requireAllPass(out)
	})

	step("skaffold dev", func(t *testing.T) { r.devLoop() })

	step("the remote profile's network, found in the cluster", func(t *testing.T) {
		out, code := r.cmd(time.Minute, "env", "KUBECTL="+r.nodeKubectl(), "POD_CIDR=", "KUBERNETES_SERVICE_IP=", "kind/cluster-network.sh")
		if code != 0 {
			t.Fatalf("kind/cluster-network.sh: exit %d: %s", code, out)
		}
		b, err := os.ReadFile(filepath.Join(r.repo, "infra", "overlays", "remote", "cluster-network.env"))
		if want := "POD_CIDR=" + node.NodePodCIDR + "\nKUBERNETES_SERVICE_IP=" + node.APIServiceIP + "\n"; err != nil || string(b) != want {
			t.Errorf("cluster-network.env: %q (%v), want %q", b, err, want)
		}
	})

	step("delete, down, up again", func(t *testing.T) {
		r.mustMake(10*time.Minute, "delete", "PROFILE=node")
		// Skaffold never deployed the namespaces (kind/namespaces.sh did), so
		// its delete leaves them and the datastores' volumes.
		for _, ns := range []string{"dark-tower", "dark-tower-observability"} {
			r.mustKubectl("get", "namespace", ns)
		}
		if pvcs := r.mustKubectl("-n", "dark-tower", "get", "pvc", "-o", "name"); !strings.Contains(pvcs, "postgres-0") || !strings.Contains(pvcs, "redis-0") {
			t.Errorf("the datastores' claims after make delete: %q, want Postgres's and Redis's", pvcs)
		}
		r.mustMake(5*time.Minute, "node-down")
		r.checkNothingLeft()
		if t.Failed() {
			t.FailNow()
		}
		r.mustMake(15*time.Minute, "node-up")
		out := r.mustKubectl("get", "node", node.NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if strings.TrimSpace(out) != "True" {
			t.Fatalf("node %s Ready=%q after the second make node-up", node.NodeName, out)
		}
	})
}

// verify runs the verifier Job as Skaffold's hook does (the script itself,
// so its exit status is the verifier's, not make's), with env added.
func (r *run) verify(env ...string) (string, int) {
	r.t.Helper()
	return r.cmd(10*time.Minute, "env", append(append([]string{"KUBECTL=" + r.nodeKubectl()}, env...), "kind/verify-cluster.sh")...)
}

// faultDeadline is the verifier's deadline for runs that must fail: a check
// that fails is retried until the deadline, and the default 180s would only
// make the test slower.
const faultDeadline = "VERIFIER_DEADLINE=60s"

// nodeKubectl is the kubectl command for the node, as the scripts take it.
func (r *run) nodeKubectl() string {
	return fmt.Sprintf("%s --kubeconfig %s --context %s", filepath.Join(r.bin, "kubectl"), filepath.Join(r.dir, "kubeconfig"), node.ContextName)
}

// jobUID is the uid of the Job whose pod's report out holds.
func (r *run) jobUID(out string) string {
	r.t.Helper()
	m := jobPod.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		r.t.Fatalf("want one `reading pod ... of job/verifier` line in the output, got %d:\n%s", len(m), lastLines(out, 40))
	}
	pod, uid := m[0][1], m[0][2]
	got := r.mustKubectl("-n", "dark-tower", "get", "pod", pod, "-o", "jsonpath={.metadata.labels.batch\\.kubernetes\\.io/controller-uid}")
	if got != uid {
		r.t.Errorf("pod %s belongs to the Job with uid %q, but its report was announced for uid %s", pod, got, uid)
	}
	return uid
}

// expectFailure: the verifier exited 1 (a check failed) or 3 (deadline
// reached with checks failing), and check id is among the failures.
func (r *run) expectFailure(out string, code int, id string) {
	r.t.Helper()
	if code != 1 && code != 3 {
		r.t.Errorf("verifier exit %d, want 1 or 3 (a check failed)", code)
	}
	if v := verdicts(out)[id]; v != "FAIL" {
		r.t.Errorf("%s: %q, want FAIL; the report:\n%s", id, v, lastLines(out, 40))
	}
}

func (r *run) cache() string {
	if c := os.Getenv("TOOLS_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "darktower-tools")
}

// goImage is the Go builder base image the node assembled: Debian with bash,
// enough for a TCP probe with bash's /dev/tcp.
func (r *run) goImage() string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "skaffold.env"))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NODE_GO_IMAGE="); ok {
			return v
		}
	}
	r.t.Fatalf("%s names no NODE_GO_IMAGE", filepath.Join(r.dir, "skaffold.env"))
	return ""
}

// probePostgres runs a pod labelled app.kubernetes.io/name=name (and part-of
// dark-tower, as the policies' pod selectors want) in ns that opens a TCP
// connection to Postgres and says CONNECTED or REFUSED.
func (r *run) probePostgres(image, ns, name string) string {
	r.t.Helper()
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: netpol-probe
  namespace: %s
  labels:
    app.kubernetes.io/name: %s
    app.kubernetes.io/part-of: dark-tower
    app.kubernetes.io/component: netpol-probe
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: probe
      image: %s
      command: ["bash", "-c", "if timeout 5 bash -c '</dev/tcp/postgres.dark-tower.svc.cluster.local/5432' 2>/dev/null; then echo CONNECTED; else echo REFUSED; fi"]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: ["ALL"]}
`, ns, name, image)
	f := filepath.Join(r.dir, "netpol-probe.yaml")
	if err := os.WriteFile(f, []byte(pod), 0o644); err != nil {
		r.t.Fatal(err)
	}
	defer r.kubectl("delete", "-f", f, "--wait=true", "--ignore-not-found")
	r.mustKubectl("apply", "-f", f)
	r.mustKubectl("-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/netpol-probe", "--timeout=120s")
	return strings.TrimSpace(r.mustKubectl("-n", ns, "logs", "netpol-probe"))
}

// checkNothingLeft: no process of the node, no mount under its state
// directory, no pod network namespace, no bridge, no iptables chain or
// ipset of the node's components.
func (r *run) checkNothingLeft() {
	t := r.t
	out, _ := exec.Command("pgrep", "-a", "-f", r.dir).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("processes still running from %s:\n%s", r.dir, s)
	}
	for _, name := range []string{"kubelet", "containerd", "dockerd", "kube-apiserver", "kube-proxy", "kube-scheduler", "kube-controller", "kube-router", "etcd", "registry", "containerd-shim"} {
		out, _ := exec.Command("pgrep", "-x", name).Output()
		// Zombies have exited: the daemons' parent (node up) is gone, and
		// where PID 1 does not reap orphans (CI's container) they stay.
		var running []string
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && procs.Alive(pid) {
				running = append(running, f)
			}
		}
		if len(running) > 0 {
			t.Errorf("a %s process is still running (pids %s)", name, running)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, r.dir) {
			t.Errorf("mount left behind: %s", line)
		}
	}
	if ns := node.NetworkNamespaces(); len(ns) > 0 {
		t.Errorf("network namespaces left behind: %v", ns)
	}
	if _, err := os.Stat("/sys/class/net/" + node.Bridge); err == nil {
		t.Errorf("bridge %s left behind", node.Bridge)
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if s := strings.TrimSpace(string(links)); s != "" {
		t.Errorf("veths left behind:\n%s", s)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		rules, err := exec.Command(save).Output()
		if err != nil {
			t.Errorf("%s: %v", save, err)
			continue
		}
		for _, line := range strings.Split(string(rules), "\n") {
			for _, prefix := range []string{"KUBE-", "DT-NODE", "DOCKER", "CNI-"} {
				if strings.Contains(line, prefix) {
					t.Errorf("%s: rule or chain left behind: %s", save, line)
					break
				}
			}
		}
	}
	sets, _ := exec.Command("ipset", "list", "-n").Output()
	if s := strings.TrimSpace(string(sets)); s != "" {
		t.Errorf("ipsets left behind: %s", strings.Fields(s))
	}
}

// dev is `make dev PROFILE=node` running in the background, its output
// collected as it comes.
type dev struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	marks []mark // when each chunk of out arrived, for the benchmark's phases
	done  chan struct{}
}

// mark says that out had reached length n at time at.
type mark struct {
	n  int
	at time.Time
}

// arrived is when the output at offset off arrived.
func (d *dev) arrived(off int) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.Search(len(d.marks), func(i int) bool { return d.marks[i].n > off })
	if i == len(d.marks) {
		return time.Now()
	}
	return d.marks[i].at
}

func (d *dev) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// reportEnd is the verifier's last line of a report.
var reportEnd = regexp.MustCompile(`(?m)^\d+ passed, \d+ failed, \d+ blocked in .*\(exit (\d+)\)$`)

// startDev starts `make dev PROFILE=node` in a process group of its own, as
// a terminal would, so that stop can send the group SIGINT like Ctrl-C.
func (r *run) startDev(env ...string) *dev {
	r.t.Helper()
	d := &dev{done: make(chan struct{})}
	d.cmd = exec.Command("make", "-C", r.repo, "--no-print-directory", "NODE_DIR="+r.dir, "BIN="+r.bin, "dev", "PROFILE=node")
	d.cmd.Dir = r.repo
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	fmt.Fprintf(r.log, "\n$ make dev PROFILE=node (background)\n")
	if err := d.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				d.mu.Lock()
				d.out.Write(buf[:n])
				d.marks = append(d.marks, mark{d.out.Len(), time.Now()})
				d.mu.Unlock()
				r.log.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		d.cmd.Wait()
		pw.Close()
		close(d.done)
	}()
	return d
}

// stop sends the process group SIGINT (Ctrl-C) and waits for Skaffold's
// clean-up; SIGKILL after five minutes.
func (d *dev) stop(t testing.TB) {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(5 * time.Minute):
		t.Errorf("make dev did not stop within 5 minutes of SIGINT")
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// nextReport waits for the verifier's report after offset in the output and
// returns it (from the line announcing the Job's pod), its exit status, what
// came before it since offset (the iteration's build and deploy) and the
// offset after it.
func (d *dev) nextReport(t testing.TB, offset int, timeout time.Duration) (report string, code int, iteration string, next int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := d.output()
		if m := reportEnd.FindStringSubmatchIndex(out[offset:]); m != nil {
			end := offset + m[1]
			seg := out[offset:end]
			start := strings.LastIndex(seg, "verify-cluster: reading pod")
			if start < 0 {
				start = 0
			}
			fmt.Sscan(out[offset+m[2]:offset+m[3]], &code)
			return seg[start:], code, seg[:start], end
		}
		select {
		case <-d.done:
			t.Fatalf("make dev exited before the next report; the end of its output:\n%s", lastLines(out, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verifier report within %s; the end of make dev's output:\n%s", timeout, lastLines(out, 40))
		}
		time.Sleep(time.Second)
	}
}

// freshVersion is a GC version no earlier run used: the node's registry
// keeps its images across runs (tools cache), and Skaffold does not build
// an image whose inputDigest tag the registry already holds ("Found
// Remotely"), so a repeated edit would build nothing.
func freshVersion(what string) string {
	return fmt.Sprintf("0.9.0-%s-%d", what, time.Now().UnixNano())
}

// built lists the images an iteration's output says Skaffold built.
func built(iteration string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^Building \[dark-tower/([^\]]+)\]`).FindAllStringSubmatch(iteration, -1) {
		out = append(out, m[1])
	}
	return out
}

// editFile rewrites a file of the checkout for the rest of the test, like a
// developer's save, and undoes it at the end whatever happens.
func (r *run) editFile(rel, old, new string) {
	r.t.Helper()
	path := filepath.Join(r.repo, rel)
	b, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		r.t.Fatalf("%s has no %q to change", rel, old)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			r.t.Errorf("restoring %s: %v", rel, err)
		}
	})
}

// podNames lists the pods of one app.kubernetes.io/name in dark-tower.
func (r *run) podNames(app string) string {
	r.t.Helper()
	return r.mustKubectl("-n", "dark-tower", "get", "pods", "-l", "app.kubernetes.io/name="+app, "-o", "jsonpath={.items[*].metadata.name}")
}

// devLoop: `make dev PROFILE=node` gives a green report; a GC source edit
// rebuilds GC alone and rolls GC alone (AC and MC keep their pods, the
// migration Job is not rerun), and GC serves the new build; a manifest edit that breaks the fleet (MC replicas
// 0) deploys without a build and shows a red report while the loop keeps
// running; undoing it turns the report green again; Ctrl-C removes what
// Skaffold deployed and leaves the namespaces and the datastores' volumes.
func (r *run) devLoop() {
	t := r.t
	d := r.startDev(faultDeadline)
	stopped := false
	defer func() {
		if !stopped {
			d.stop(t)
		}
	}()
	report, code, _, off := d.nextReport(t, 0, 15*time.Minute)
	if code != 0 {
		t.Fatalf("first skaffold dev iteration: exit %d:\n%s", code, lastLines(report, 40))
	}
	r.requireAllPass(report)
	acPods, mcPods := r.podNames("ac-service"), r.podNames("meeting-controller")
	migration := r.mustKubectl("-n", "dark-tower", "get", "job/db-migrate", "-o", "jsonpath={.metadata.uid}")

	// An edit before Skaffold watches again would be part of its baseline.
	d.watching(t, off, 5*time.Minute)
	edited := freshVersion("dev-loop")
	start, from := time.Now(), off
	r.editFile("internal/gc/version.go", `const Version = "`+gcVersion(t, r.repo)+`"`, `const Version = "`+edited+`"`)
	report, code, iter, off := d.nextReport(t, off, 15*time.Minute)
	t.Logf("GC edit to green report: %s (%s)", time.Since(start).Round(time.Second), d.phases(from, off, start))
	if code != 0 {
		t.Fatalf("after the GC edit: exit %d:\n%s", code, lastLines(report, 40))
	}
	r.requireAllPass(report)
	if b := built(iter); len(b) != 1 || b[0] != "global-controller" {
		t.Errorf("a GC source edit built %v, want [global-controller]", b)
	}
	if got := r.mustKubectl("get", "--raw", "/api/v1/namespaces/dark-tower/services/global-controller:8080/proxy/version"); !strings.Contains(got, `"version":"`+edited+`"`) {
		t.Errorf("GET /version after the dev iteration: %s, want version %s", got, edited)
	}
	if got := r.podNames("ac-service"); got != acPods {
		t.Errorf("AC's pods changed with a GC edit: %q, then %q", acPods, got)
	}
	if got := r.podNames("meeting-controller"); got != mcPods {
		t.Errorf("MC's pods changed with a GC edit: %q, then %q", mcPods, got)
	}
	if got := r.mustKubectl("-n", "dark-tower", "get", "job/db-migrate", "-o", "jsonpath={.metadata.uid}"); got != migration {
		t.Errorf("the migration Job was recreated (uid %s, then %s) though neither its image nor the migrations changed", migration, got)
	}

	// A manifest edit: deployed without a build; here a broken one.
	mc := "infra/overlays/kind/laptop/meeting-controller.yaml"
	d.watching(t, off, 5*time.Minute)
	r.editFile(mc, "spec:\n  template:", "spec:\n  replicas: 0\n  template:")
	report, code, iter, off = d.nextReport(t, off, 10*time.Minute)
	if b := built(iter); len(b) != 0 {
		t.Errorf("a manifest edit built %v, want nothing", b)
	}
	if n := strings.TrimSpace(r.mustKubectl("-n", "dark-tower", "get", "deployment/meeting-controller", "-o", "jsonpath={.spec.replicas}")); n != "0" {
		t.Errorf("meeting-controller replicas %s after the manifest edit, want 0", n)
	}
	r.expectFailure(report, code, "gc.registration")

	// Undone: the loop is still running and turns green.
	d.watching(t, off, 5*time.Minute)
	restore, err := os.ReadFile(filepath.Join(r.repo, mc))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.repo, mc), bytes.Replace(restore, []byte("  replicas: 0\n"), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	report, code, _, _ = d.nextReport(t, off, 10*time.Minute)
	if code != 0 {
		t.Fatalf("after the manifest edit was undone: exit %d:\n%s", code, lastLines(report, 40))
	}
	r.requireAllPass(report)

	d.stop(t)
	stopped = true
	// Skaffold's clean-up removed what it deployed, not the namespaces or
	// the volumes (docs/kind.md).
	if left := strings.TrimSpace(r.mustKubectl("-n", "dark-tower", "get", "deployments,statefulsets", "-o", "name")); left != "" {
		t.Errorf("after Ctrl-C, still deployed: %s", left)
	}
	for _, ns := range []string{"dark-tower", "dark-tower-observability"} {
		r.mustKubectl("get", "namespace", ns)
	}
	if pvcs := r.mustKubectl("-n", "dark-tower", "get", "pvc", "-o", "name"); !strings.Contains(pvcs, "postgres-0") || !strings.Contains(pvcs, "redis-0") {
		t.Errorf("the datastores' claims after Ctrl-C: %q, want Postgres's and Redis's", pvcs)
	}
}

// gcVersion is the Version constant of internal/gc/version.go in repo.
func gcVersion(t testing.TB, repo string) string {
	b, err := os.ReadFile(filepath.Join(repo, "internal", "gc", "version.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`const Version = "([^"]*)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("internal/gc/version.go has no `const Version = \"...\"`")
	}
	return string(m[1])
}

// watching waits until Skaffold watches for changes again after offset: an
// edit made before that is part of its baseline and starts no iteration.
func (d *dev) watching(t testing.TB, offset int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.output()[offset:], "Watching for changes") {
		if time.Now().After(deadline) {
			t.Fatalf("Skaffold not watching for changes within %s; the end of make dev's output:\n%s", timeout, lastLines(d.output(), 40))
		}
		time.Sleep(time.Second)
	}
}
