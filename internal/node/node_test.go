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
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/node"
)

// run is one node under test: the repository (or a copy of it), the node's
// state directory and a log of every command.
type run struct {
	t    *testing.T
	repo string // where make and Skaffold run
	bin  string // the pinned tools (the checkout's bin/)
	dir  string // NODE_DIR
	log  *os.File
}

func newRun(t *testing.T) *run {
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
	return r
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

// The verifier's checks in the cluster, every one of which must pass on a
// healthy node (the cluster checks included).
var clusterChecks = []string{
	"redis.reachable", "redis.auth-enforced", "redis.persistence",
	"postgres.reachable", "postgres.schema",
	"ac.jwks", "ac.token",
	"gc.health", "gc.auth-enforced", "gc.registration",
	"mc.ready", "mc.webtransport",
	"prometheus.ready", "prometheus.targets",
	"kubernetes.workloads", "kubernetes.migration", "kubernetes.networkpolicy",
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
	for _, id := range clusterChecks {
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
	// Whatever happens, the node comes down and leaves nothing behind.
	t.Cleanup(func() {
		if _, code := r.make(5*time.Minute, "node-down"); code != 0 {
			t.Errorf("make node-down: exit %d", code)
		}
		r.checkNothingLeft()
	})

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
		out, code := r.verify()
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
		src := filepath.Join(r.repo, "internal", "gc", "version.go")
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		const edited = "0.9.0-node-test"
		changed := regexp.MustCompile(`const Version = "[^"]*"`).ReplaceAll(b, []byte(`const Version = "`+edited+`"`))
		if bytes.Equal(changed, b) {
			t.Fatalf("%s has no `const Version = \"...\"` to change", src)
		}
		// The edit is a developer's save in the checkout; it is undone
		// whatever happens next.
		if err := os.WriteFile(src, changed, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(src, b, 0o644); err != nil {
				t.Errorf("restoring %s: %v", src, err)
			}
		})
		out := r.mustMake(30*time.Minute, "run", "PROFILE=node")
		r.requireAllPass(out)
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
			out, code := r.verify()
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
			out, code := r.verify()
			r.expectFailure(out, code, "redis.reachable")
			if strings.Contains(out, "not-the-password") {
				t.Errorf("the verifier's report shows the password it was given")
			}
		})
		t.Run("postgres scaled to 0", func(t *testing.T) {
			r.mustKubectl("-n", "dark-tower", "scale", "statefulset/postgres", "--replicas=0")
			r.mustKubectl("-n", "dark-tower", "wait", "--for=delete", "pod/postgres-0", "--timeout=120s")
			out, code := r.verify()
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

	step("delete, down, up again", func(t *testing.T) {
		r.mustMake(10*time.Minute, "delete", "PROFILE=node")
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
// so its exit status is the verifier's, not make's).
func (r *run) verify() (string, int) {
	r.t.Helper()
	kubectl := fmt.Sprintf("%s --kubeconfig %s --context %s", filepath.Join(r.bin, "kubectl"), filepath.Join(r.dir, "kubeconfig"), node.ContextName)
	return r.cmd(10*time.Minute, "env", "KUBECTL="+kubectl, "kind/verify-cluster.sh")
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
		if out, _ := exec.Command("pgrep", "-x", name).Output(); len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("a %s process is still running (pids %s)", name, strings.Fields(string(out)))
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
