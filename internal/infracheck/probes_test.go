package infracheck

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/darktower/devstack/internal/testsupport"
)

// stackPort is a container port of a rendered workload and where the test runs it.
type stackPort struct {
	workload string // metadata.name
	number   int
	proto    string
	local    int
}

// TestProbesServedByBinaries starts the real binaries with the Kind overlay's own
// environment, Secrets and mounted files (cluster addresses rewritten to loopback: each
// Service port to the local process behind it, each bind address's port to a free port), next
// to a real Postgres and Redis holding the manifests' passwords, and checks every HTTP probe
// of every container: its port is one the binary listens on and its path answers 200 once the
// stack is up. Readiness reaching 200 also proves the services can work with each other as the
// manifests wire them: the migration ran, AC knows GC's and MC's client secrets, MC registered.
func TestProbesServedByBinaries(t *testing.T) {
	m := render(t)
	ours := ourWorkloads(t, m)
	for _, bin := range binaries {
		if _, ok := ours[bin]; !ok {
			t.Fatalf("no rendered workload runs the image dark-tower/%s", bin)
		}
	}
	pgSecret := secretData(t, m, "dark-tower", "postgres-credentials")
	redisSecret := secretData(t, m, "dark-tower", "redis-credentials")
	if pgSecret == nil || redisSecret == nil {
		t.Fatal("Secrets postgres-credentials and redis-credentials must be rendered")
	}

	pg := testsupport.StartPostgres(t)
	pg.Exec(t, "ALTER ROLE "+pg.User+" PASSWORD '"+strings.ReplaceAll(pgSecret["POSTGRES_PASSWORD"], "'", "''")+"'")
	pg.Password = pgSecret["POSTGRES_PASSWORD"]
	rd := testsupport.StartRedis(t, func(r *testsupport.Redis) { r.Password = redisSecret["REDIS_PASSWORD"] })

	// Local ports for every container port of our workloads; the datastores are the real
	// servers started above.
	ports := map[string]*stackPort{} // "<workload>/<number>/<proto>"
	key := func(w string, n int, proto string) string { return fmt.Sprintf("%s/%d/%s", w, n, proto) }
	for _, w := range ours {
		for _, cp := range w.c.Ports {
			proto := protoOr(cp.Protocol)
			sp := &stackPort{workload: w.Name, number: int(cp.ContainerPort), proto: proto}
			if proto == "UDP" {
				sp.local = testsupport.FreeUDPPort(t)
			} else {
				sp.local = testsupport.FreePort(t)
			}
			ports[key(w.Name, int(cp.ContainerPort), proto)] = sp
		}
	}
	datastores := map[string]int{"postgres": pg.Port, "redis": rd.Port}

	// Cluster addresses -> loopback, from the Services' selectors and target ports.
	repl := map[string]string{}
	for _, o := range m.OfKind("Service") {
		if o.GetNamespace() != "dark-tower" {
			continue
		}
		var svc corev1.Service
		if err := manifest.Typed(o, &svc); err != nil {
			t.Fatal(err)
		}
		sel := svc.Spec.Selector
		target := ""
		for n := range datastores {
			if sel["app.kubernetes.io/name"] == n {
				target = n
			}
		}
		var tw *workload
		for _, w := range ours {
			if matches(sel, w.Template.Labels) {
				tw = &w
			}
		}
		for _, sp := range svc.Spec.Ports {
			local := 0
			switch {
			case target != "" && int(sp.Port) == map[string]int{"postgres": 5432, "redis": 6379}[target]:
				local = datastores[target]
			case tw != nil:
				n, ok := portNumber(tw.c, orPort(sp.TargetPort, sp.Port))
				if !ok {
					t.Errorf("Service %s port %d: targetPort %s is no container port of %s", svc.Name, sp.Port, sp.TargetPort.String(), tw.Name)
					continue
				}
				if p := ports[key(tw.Name, n, protoOr(sp.Protocol))]; p != nil {
					local = p.local
				}
			}
			if local == 0 {
				continue
			}
			for _, host := range []string{svc.Name + ".dark-tower.svc.cluster.local", svc.Name + ".dark-tower.svc", svc.Name + ".dark-tower"} {
				repl[host+":"+strconv.Itoa(int(sp.Port))] = "127.0.0.1:" + strconv.Itoa(local)
			}
		}
	}
	addrsFor := func(w workload) func(string) string {
		r := map[string]string{}
		for k, v := range repl {
			r[k] = v
		}
		for _, sp := range ports {
			if sp.workload == w.Name {
				r["0.0.0.0:"+strconv.Itoa(sp.number)] = "127.0.0.1:" + strconv.Itoa(sp.local)
				r[podIP+":"+strconv.Itoa(sp.number)] = "127.0.0.1:" + strconv.Itoa(sp.local)
			}
		}
		from := make([]string, 0, len(r))
		for k := range r {
			from = append(from, k)
		}
		sort.Slice(from, func(i, j int) bool { return len(from[i]) > len(from[j]) })
		var pairs []string
		for _, k := range from {
			pairs = append(pairs, k, r[k])
		}
		rp := strings.NewReplacer(pairs...)
		return rp.Replace
	}

	prep := map[string]prepared{}
	for _, bin := range binaries {
		w := ours[bin]
		p := prepare(t, m, w, bin, addrsFor(w))
		if bin == "meeting-controller" {
			p.env["MC_ALLOW_LOOPBACK_ADVERTISE"] = "true" // the pod IP became 127.0.0.1 here
		}
		for _, cp := range w.c.Ports {
			if !bound(p, ports[key(w.Name, int(cp.ContainerPort), protoOr(cp.Protocol))]) {
				t.Errorf("%s: container port %s %d/%s is bound by no address the manifest gives the binary (env or args)", bin, cp.Name, cp.ContainerPort, protoOr(cp.Protocol))
			}
		}
		prep[bin] = p
	}
	if t.Failed() {
		return
	}

	// db-migrate runs to completion first, as the Job does before AC and GC serve.
	runToCompletion(t, prep["db-migrate"], 60*time.Second)
	for _, bin := range []string{"ac-service", "global-controller", "meeting-controller", "verifier"} {
		p := prep[bin]
		testsupport.StartExternal(t, bin, p.path, p.args, p.env)
	}

	type check struct{ what, url string }
	var checks []check
	for _, bin := range []string{"ac-service", "global-controller", "meeting-controller", "verifier"} {
		w := ours[bin]
		for kind, pr := range map[string]*corev1.Probe{"liveness": w.c.LivenessProbe, "readiness": w.c.ReadinessProbe, "startup": w.c.StartupProbe} {
			if pr == nil {
				continue
			}
			if pr.HTTPGet == nil {
				t.Errorf("%s: %s probe is not httpGet; the binaries serve HTTP probes", bin, kind)
				continue
			}
			n, ok := portNumber(w.c, pr.HTTPGet.Port)
			sp := ports[key(w.Name, n, "TCP")]
			if !ok || sp == nil {
				t.Errorf("%s: %s probe port %s is not a TCP container port", bin, kind, pr.HTTPGet.Port.String())
				continue
			}
			checks = append(checks, check{bin + " " + kind + " " + pr.HTTPGet.Path, "http://127.0.0.1:" + strconv.Itoa(sp.local) + pr.HTTPGet.Path})
		}
		if w.c.LivenessProbe == nil || w.c.ReadinessProbe == nil {
			t.Errorf("%s: needs liveness and readiness probes", bin)
		}
	}
	deadline := time.Now().Add(45 * time.Second)
	for _, c := range checks {
		if err := testsupport.WaitHTTP(c.url, http.StatusOK, time.Until(deadline)); err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		t.Logf("%s: 200", c.what)
	}
}

// runToCompletion runs a Job's binary and requires exit 0.
func runToCompletion(t *testing.T, p prepared, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, p.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range p.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s with the manifest's environment: %v\n%s", p.bin, err, out)
	}
}

// bound reports whether the binary is given a listen address on the port's local number.
func bound(p prepared, sp *stackPort) bool {
	if sp == nil {
		return false
	}
	want := "127.0.0.1:" + strconv.Itoa(sp.local)
	for k, v := range p.env {
		if strings.HasSuffix(k, "BIND_ADDRESS") && v == want {
			return true
		}
	}
	for _, a := range p.args {
		if a == want {
			return true
		}
	}
	return false
}

func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// orPort is a Service port's targetPort, which defaults to its port.
func orPort(target intstr.IntOrString, port int32) intstr.IntOrString {
	if target == (intstr.IntOrString{}) {
		return intstr.FromInt32(port)
	}
	return target
}

func protoOr(p corev1.Protocol) string {
	if p == "" {
		return "TCP"
	}
	return string(p)
}
