package probe

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The cluster checks against a real kube-apiserver and etcd. No controllers
// run there, so every status below is written by the test through the status
// subresource, exactly as the Deployment, StatefulSet and Job controllers and
// the kubelet would write it.
func TestKubernetesChecks(t *testing.T) {
	api := testsupport.StartKubeAPI(t)
	admin, err := kubernetes.NewForConfig(api.Config())
	if err != nil {
		t.Fatal(err)
	}
	k := &kube{t: t, cs: admin}
	for _, ns := range []string{"dark-tower", "dark-tower-observability"} {
		k.namespace(ns)
	}
	// The verifier's own RBAC from the manifests, and a kubeconfig with its
	// ServiceAccount's token: every check below runs with exactly what the
	// in-cluster verifier may read.
	kubeconfig := k.verifierKubeconfig(api.URL, filepath.Join(testsupport.ModuleRoot(t), "infra/services/verifier/rbac.yaml"))

	cfg := &config.Config{Mode: "cluster", Kubernetes: &config.Kubernetes{
		Kubeconfig: kubeconfig,
		Namespace:  "dark-tower",
		Workloads: map[string]config.Workloads{
			"dark-tower":               {Deployments: []string{"ac-service", "global-controller"}, StatefulSets: []string{"redis"}},
			"dark-tower-observability": {Deployments: []string{"prometheus"}, StatefulSets: []string{"loki"}, DaemonSets: []string{"alloy"}},
		},
		MigrationJob: "db-migrate",
	}}
	k.deployment("dark-tower", "ac-service", 2)
	k.deployment("dark-tower", "global-controller", 2)
	k.statefulset("dark-tower", "redis", 1)
	k.deployment("dark-tower-observability", "prometheus", 1)
	k.statefulset("dark-tower-observability", "loki", 1)
	k.daemonset("dark-tower-observability", "alloy", 1)

	t.Run("workloads", func(t *testing.T) {
		run := func() (Result, classify.Verdict) { return attempt(t, cfg, kubernetesWorkloads) }

		// Created but never reconciled: observedGeneration 0 < generation 1.
		res, cl := run()
		wantFail(t, res, cl, classify.K8sRolloutPending, false)
		wantIn(t, cl.Next, "kubectl -n dark-tower", "rollout status")

		for _, n := range []string{"ac-service", "global-controller"} {
			k.deploymentStatus("dark-tower", n, 2, 2)
		}
		k.statefulsetStatus("dark-tower", "redis", 1)
		k.deploymentStatus("dark-tower-observability", "prometheus", 1, 1)
		k.statefulsetStatus("dark-tower-observability", "loki", 1)
		k.daemonsetStatus("dark-tower-observability", "alloy", 1)
		res, _ = run()
		if res.Err != nil {
			t.Fatalf("all ready: %v (%s)", res.Err, res.Observed)
		}
		wantIn(t, res.Observed, "dark-tower/deployment/ac-service 2/2 ready", "dark-tower-observability/daemonset/alloy 1/1 ready")

		// The evidence says which build each workload runs (issue 10): a
		// Skaffold-built image by its name and the start of its inputDigest tag.
		tag := strings.Repeat("3f9a", 16)
		d, err := k.cs.AppsV1().Deployments("dark-tower").Get(bg, "ac-service", metav1.GetOptions{})
		k.check(err)
		d.Spec.Template.Spec.Containers[0].Image = "127.0.0.1:5001/dark-tower_ac-service:" + tag + "@sha256:" + strings.Repeat("0", 64)
		_, err = k.cs.AppsV1().Deployments("dark-tower").Update(bg, d, metav1.UpdateOptions{})
		k.check(err)
		k.deploymentStatus("dark-tower", "ac-service", 2, 2)
		res, _ = run()
		if res.Err != nil {
			t.Fatalf("all ready after a new image: %v (%s)", res.Err, res.Observed)
		}
		wantIn(t, res.Observed, "dark-tower/deployment/ac-service 2/2 ready (dark-tower_ac-service:"+tag[:12]+")",
			"dark-tower/statefulset/redis 1/1 ready (redis)")

		// GC crash-loops: 0 of 2 ready, its pods say why.
		k.deploymentStatus("dark-tower", "global-controller", 2, 0)
		k.pod("dark-tower", "global-controller-7d9f-abcde", "global-controller", []string{"global-controller"}, nil, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "global-controller", Image: "dark-tower/global-controller", RestartCount: 5,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container=global-controller"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}}
		})
		res, cl = run()
		wantFail(t, res, cl, classify.K8sCrashLoop, false)
		wantIn(t, res.Observed, "not ready: dark-tower/deployment/global-controller 0/2 ready", "CrashLoopBackOff", "last exit code 2", "ready: dark-tower/deployment/ac-service 2/2 ready")
		wantIn(t, cl.Next, "kubectl -n dark-tower logs global-controller-7d9f-abcde -c global-controller --previous")

		// AC cannot start: a Secret key is missing. That outranks the crash
		// loop (it is the cause to fix first) and is definite.
		k.deploymentStatus("dark-tower", "ac-service", 2, 1)
		k.pod("dark-tower", "ac-service-5c4b-xyz", "ac-service", []string{"ac-service"}, nil, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "ac-service", Image: "dark-tower/ac-service",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError",
					Message: "couldn't find key AC_SIGNING_KEY in Secret dark-tower/ac-signing-key"}}}}
		})
		res, cl = run()
		wantFail(t, res, cl, classify.K8sConfigError, true)
		wantIn(t, cl.Cause, "couldn't find key AC_SIGNING_KEY in Secret dark-tower/ac-signing-key", "ac-service-5c4b-xyz")
		wantIn(t, res.Observed, "CreateContainerConfigError", "CrashLoopBackOff")
		wantIn(t, cl.Next, "kubectl -n dark-tower describe pod ac-service-5c4b-xyz")

		// Fixed in dark-tower; Prometheus cannot pull its image.
		k.deploymentStatus("dark-tower", "ac-service", 2, 2)
		k.deploymentStatus("dark-tower", "global-controller", 2, 2)
		k.deploymentStatus("dark-tower-observability", "prometheus", 1, 0)
		k.pod("dark-tower-observability", "prometheus-6f7-q", "prometheus", []string{"prometheus"}, nil, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "prometheus", Image: "prom/prometheus:v9",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "prom/prometheus:v9"`}}}}
		})
		res, cl = run()
		wantFail(t, res, cl, classify.K8sImagePull, false)
		wantIn(t, cl.Next, "kubectl -n dark-tower-observability describe pod prometheus-6f7-q")
		wantIn(t, res.Error(), "dark-tower-observability/deployment/prometheus")

		// Readiness failing, nothing waiting: the generic verdict, with the
		// command the issue names.
		k.deploymentStatus("dark-tower-observability", "prometheus", 1, 1)
		k.deploymentStatus("dark-tower", "global-controller", 2, 1)
		k.podStatus("dark-tower", "global-controller-7d9f-abcde", loopbackPod(map[string]bool{"global-controller": false}))
		res, cl = run()
		wantFail(t, res, cl, classify.K8sWorkloadNotReady, false)
		wantIn(t, cl.Next, "kubectl -n dark-tower describe deployment/global-controller")
		wantIn(t, res.Observed, "global-controller 1/2 ready", "container global-controller running, not ready")

		// A workload that was never deployed.
		k.deploymentStatus("dark-tower", "global-controller", 2, 2)
		cfg.Kubernetes.Workloads["dark-tower"] = config.Workloads{Deployments: []string{"ac-service", "global-controller"}, StatefulSets: []string{"redis", "postgres"}}
		res, cl = run()
		wantFail(t, res, cl, classify.K8sWorkloadMissing, false)
		wantIn(t, res.Observed, "dark-tower/statefulset/postgres not found")

		// A namespace the verifier's Role does not cover: RBAC, definite.
		cfg.Kubernetes.Workloads["dark-tower"] = config.Workloads{Deployments: []string{"ac-service", "global-controller"}, StatefulSets: []string{"redis"}}
		cfg.Kubernetes.Workloads["kube-system"] = config.Workloads{Deployments: []string{"coredns"}}
		res, cl = run()
		wantFail(t, res, cl, classify.K8sForbidden, true)
		wantIn(t, cl.Next, "kubectl auth can-i --list -n kube-system --as=system:serviceaccount:dark-tower:verifier")
		delete(cfg.Kubernetes.Workloads, "kube-system")
		if res, _ = run(); res.Err != nil {
			t.Fatalf("ready again: %v", res.Err)
		}
	})

	t.Run("migration", func(t *testing.T) {
		run := func(job string) (Result, classify.Verdict) {
			cfg.Kubernetes.MigrationJob = job
			return attempt(t, cfg, kubernetesMigration)
		}
		res, cl := run("db-migrate")
		wantFail(t, res, cl, classify.K8sMigrationMissing, false)

		k.job("db-migrate")
		res, cl = run("db-migrate")
		wantFail(t, res, cl, classify.K8sMigrationRunning, false)
		wantIn(t, cl.Next, "kubectl -n dark-tower logs job/db-migrate")

		// Its pod cannot start: reported as that, not as "still running".
		j := k.job("db-migrate-noconfig")
		k.pod("dark-tower", "db-migrate-noconfig-x1", "db-migrate", []string{"db-migrate"}, j.Spec.Template.Labels, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "db-migrate", Image: "dark-tower/db-migrate",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError",
					Message: "couldn't find key DATABASE_URL in Secret dark-tower/postgres-credentials"}}}}
		})
		res, cl = run("db-migrate-noconfig")
		wantFail(t, res, cl, classify.K8sConfigError, true)
		wantIn(t, cl.Cause, "couldn't find key DATABASE_URL in Secret dark-tower/postgres-credentials")

		k.jobFinished("db-migrate", batchv1.JobComplete)
		res, _ = run("db-migrate")
		if res.Err != nil {
			t.Fatalf("complete job: %v (%s)", res.Err, res.Observed)
		}
		wantIn(t, res.Observed, "dark-tower/job/db-migrate Complete at", "succeeded 1")

		k.job("db-migrate-bad")
		k.jobFinished("db-migrate-bad", batchv1.JobFailed)
		res, cl = run("db-migrate-bad")
		wantFail(t, res, cl, classify.K8sMigrationFailed, true)
		wantIn(t, cl.Cause, "BackoffLimitExceeded")
		wantIn(t, cl.Next, "kubectl -n dark-tower logs job/db-migrate-bad")
		cfg.Kubernetes.MigrationJob = "db-migrate"
	})

	t.Run("networkpolicy", func(t *testing.T) {
		// Pod IPs are 127.0.0.1 (set through the pod status subresource), so
		// the verifier's dial hits real loopback listeners.
		redis := listen(t)
		exporter := listen(t)
		closed := testsupport.FreePort(t)
		np := &config.NetworkPolicy{DialTimeout: config.Duration(time.Second),
			Allow: []config.PodPort{{Pods: "app.kubernetes.io/name=redis", Container: "redis", Port: redis}},
			Deny:  []config.PodPort{{Pods: "app.kubernetes.io/name=redis", Container: "redis-exporter", Port: closed}}}
		cfg.Kubernetes.NetworkPolicy = np
		run := func() (Result, classify.Verdict) { return attempt(t, cfg, kubernetesNetworkPolicy) }

		// The exporter is not ready yet: nothing is dialled.
		ready := map[string]bool{"redis": true, "redis-exporter": false}
		k.pod("dark-tower", "redis-0", "redis", []string{"redis", "redis-exporter"}, nil, loopbackPod(ready))
		res, cl := run()
		wantFail(t, res, cl, classify.K8sNetpolTargetNotReady, false)
		wantIn(t, res.Observed, "redis-0 container redis-exporter not ready")

		// Allowed port answers, denied port refuses: enforced.
		ready["redis-exporter"] = true
		k.podStatus("dark-tower", "redis-0", loopbackPod(ready))
		res, _ = run()
		if res.Err != nil {
			t.Fatalf("enforced: %v (%s)", res.Err, res.Observed)
		}
		wantIn(t, res.Observed, "allow (pod/redis-0 127.0.0.1:"+strconv.Itoa(redis)+", container redis ready): connected",
			"deny (pod/redis-0 127.0.0.1:"+strconv.Itoa(closed)+", container redis-exporter ready): refused")

		// The denied port accepts: NetworkPolicy is not enforced. First with
		// no policy selecting the pod, then with one.
		np.Deny[0].Port = exporter
		res, cl = run()
		wantFail(t, res, cl, classify.K8sNetpolMissing, true)
		wantIn(t, res.Observed, "CONNECTED", "no NetworkPolicy restricts its ingress")
		k.networkPolicy("dark-tower", "redis", "redis")
		res, cl = run()
		wantFail(t, res, cl, classify.K8sNetpolNotEnforced, true)
		wantIn(t, cl.Cause, "not enforcing NetworkPolicy", "127.0.0.1:"+strconv.Itoa(exporter))
		wantIn(t, res.Observed, "policies redis select it")

		// The allowed port does not answer: a network outage is not taken
		// for enforcement even though the deny port is closed.
		np.Deny[0].Port = closed
		np.Allow[0].Port = testsupport.FreePort(t)
		res, cl = run()
		wantFail(t, res, cl, classify.K8sNetpolAllowFailed, false)
		wantIn(t, cl.Next, "kubectl -n dark-tower get networkpolicy verifier redis -o yaml")
	})
}

func TestServiceNamesInEvidence(t *testing.T) {
	if got := dnsNames("redis.dark-tower:6379", "http://ac-service.dark-tower:8082", "127.0.0.1:5432", "host=x port=1", "redis.dark-tower:6379"); strings.Join(got, " ") != "redis.dark-tower ac-service.dark-tower" {
		t.Fatalf("dnsNames = %v", got)
	}
	cfg := &config.Config{Mode: "cluster", Redis: &config.Redis{Address: "localhost:1"}}
	for _, c := range Checks(cfg) {
		res := c.Probe(context.Background(), Target{Check: c.ID, Cfg: cfg, Run: NewRun(time.Now())}, slog.New(slog.DiscardHandler))
		if res.Err == nil || !strings.Contains(res.Observed, "DNS localhost = localhost ") {
			t.Errorf("%s: evidence %q lacks the resolved name (err %v)", c.ID, res.Observed, res.Err)
		}
	}
	cfg.Mode = "local"
	for _, c := range Checks(cfg) {
		if res := c.Probe(context.Background(), Target{Check: c.ID, Cfg: cfg, Run: NewRun(time.Now())}, slog.New(slog.DiscardHandler)); strings.Contains(res.Observed, "DNS") {
			t.Errorf("local mode %s: evidence %q names DNS", c.ID, res.Observed)
		}
	}
}

func attempt(t *testing.T, cfg *config.Config, fn Func) (Result, classify.Verdict) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := fn(ctx, Target{Cfg: cfg, Run: NewRun(time.Now())}, slog.New(slog.DiscardHandler))
	return res, classify.Classify(res.Err, classify.Info{Mode: "cluster", Vars: map[string]string{"ns": cfg.Kubernetes.Namespace}})
}

func wantFail(t *testing.T, res Result, cl classify.Verdict, class classify.Class, definite bool) {
	t.Helper()
	if res.Err == nil {
		t.Fatalf("passed (%s); want class %s", res.Observed, class)
	}
	if cl.ID != class || cl.Definite != definite {
		t.Fatalf("class %s (definite %v), want %s (definite %v): %v\nevidence: %s", cl.ID, cl.Definite, class, definite, res.Err, res.Observed)
	}
	if strings.Contains(cl.Cause+cl.Next, "{") {
		t.Fatalf("unfilled placeholder: cause %q next %q", cl.Cause, cl.Next)
	}
}

func wantIn(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("%q lacks %q", s, p)
		}
	}
}

func (r Result) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}

func listen(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func loopbackPod(ready map[string]bool) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.PodIP = "127.0.0.1"
		p.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		all := true
		p.Status.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready[c.Name],
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}})
			all = all && ready[c.Name]
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: condition(all), LastTransitionTime: metav1.Now()},
			{Type: corev1.ContainersReady, Status: condition(all), LastTransitionTime: metav1.Now()},
		}
	}
}

func condition(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

// kube writes objects and their status as the admin.
type kube struct {
	t  *testing.T
	cs kubernetes.Interface
}

var bg = context.Background()

func (k *kube) check(err error) {
	k.t.Helper()
	if err != nil {
		k.t.Fatal(err)
	}
}

func (k *kube) namespace(ns string) {
	k.t.Helper()
	_, err := k.cs.CoreV1().Namespaces().Create(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	k.check(err)
	// No controller-manager creates it; pod admission needs it.
	_, err = k.cs.CoreV1().ServiceAccounts(ns).Create(bg, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	k.check(err)
}

func appLabels(app string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "dark-tower"}
}

func podTemplate(app string, containers ...string) corev1.PodTemplateSpec {
	pt := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: appLabels(app)}}
	for _, c := range containers {
		pt.Spec.Containers = append(pt.Spec.Containers, corev1.Container{Name: c, Image: "dark-tower/" + c})
	}
	return pt
}

func (k *kube) deployment(ns, name string, replicas int32) {
	k.t.Helper()
	_, err := k.cs.AppsV1().Deployments(ns).Create(bg, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: appLabels(name)}, Template: podTemplate(name, name)}}, metav1.CreateOptions{})
	k.check(err)
}

func (k *kube) deploymentStatus(ns, name string, replicas, ready int32) {
	k.t.Helper()
	d, err := k.cs.AppsV1().Deployments(ns).Get(bg, name, metav1.GetOptions{})
	k.check(err)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		ReadyReplicas: ready, AvailableReplicas: ready, UnavailableReplicas: replicas - ready}
	_, err = k.cs.AppsV1().Deployments(ns).UpdateStatus(bg, d, metav1.UpdateOptions{})
	k.check(err)
}

func (k *kube) statefulset(ns, name string, replicas int32) {
	k.t.Helper()
	_, err := k.cs.AppsV1().StatefulSets(ns).Create(bg, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{Replicas: &replicas, ServiceName: name, Selector: &metav1.LabelSelector{MatchLabels: appLabels(name)}, Template: podTemplate(name, name)}}, metav1.CreateOptions{})
	k.check(err)
}

func (k *kube) statefulsetStatus(ns, name string, ready int32) {
	k.t.Helper()
	s, err := k.cs.AppsV1().StatefulSets(ns).Get(bg, name, metav1.GetOptions{})
	k.check(err)
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: *s.Spec.Replicas, ReadyReplicas: ready,
		CurrentReplicas: *s.Spec.Replicas, UpdatedReplicas: *s.Spec.Replicas, AvailableReplicas: ready,
		CurrentRevision: name + "-1", UpdateRevision: name + "-1"}
	_, err = k.cs.AppsV1().StatefulSets(ns).UpdateStatus(bg, s, metav1.UpdateOptions{})
	k.check(err)
}

func (k *kube) daemonset(ns, name string, _ int32) {
	k.t.Helper()
	_, err := k.cs.AppsV1().DaemonSets(ns).Create(bg, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: appLabels(name)}, Template: podTemplate(name, name)}}, metav1.CreateOptions{})
	k.check(err)
}

func (k *kube) daemonsetStatus(ns, name string, nodes int32) {
	k.t.Helper()
	d, err := k.cs.AppsV1().DaemonSets(ns).Get(bg, name, metav1.GetOptions{})
	k.check(err)
	d.Status = appsv1.DaemonSetStatus{ObservedGeneration: d.Generation, DesiredNumberScheduled: nodes, CurrentNumberScheduled: nodes,
		NumberReady: nodes, UpdatedNumberScheduled: nodes, NumberAvailable: nodes}
	_, err = k.cs.AppsV1().DaemonSets(ns).UpdateStatus(bg, d, metav1.UpdateOptions{})
	k.check(err)
}

// pod creates a pod of app (extra labels added, e.g. a Job's) and writes its
// status with set.
func (k *kube) pod(ns, name, app string, containers []string, extra map[string]string, set func(*corev1.Pod)) {
	k.t.Helper()
	pt := podTemplate(app, containers...)
	for l, v := range extra {
		pt.Labels[l] = v
	}
	pt.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if extra != nil {
		pt.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	_, err := k.cs.CoreV1().Pods(ns).Create(bg, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: pt.Labels}, Spec: pt.Spec}, metav1.CreateOptions{})
	k.check(err)
	k.podStatus(ns, name, set)
}

func (k *kube) podStatus(ns, name string, set func(*corev1.Pod)) {
	k.t.Helper()
	p, err := k.cs.CoreV1().Pods(ns).Get(bg, name, metav1.GetOptions{})
	k.check(err)
	if p.Status.Phase == "" {
		p.Status.Phase = corev1.PodPending
	}
	set(p)
	_, err = k.cs.CoreV1().Pods(ns).UpdateStatus(bg, p, metav1.UpdateOptions{})
	k.check(err)
}

func (k *kube) job(name string) *batchv1.Job {
	k.t.Helper()
	pt := podTemplate("db-migrate", "db-migrate")
	pt.Spec.RestartPolicy = corev1.RestartPolicyNever
	j, err := k.cs.BatchV1().Jobs("dark-tower").Create(bg, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{Template: pt}}, metav1.CreateOptions{})
	k.check(err)
	return j
}

// jobFinished writes the terminal status the Job controller would: the
// interim condition first (SuccessCriteriaMet or FailureTarget), then the
// final one, as the API requires.
func (k *kube) jobFinished(name string, final batchv1.JobConditionType) {
	k.t.Helper()
	j, err := k.cs.BatchV1().Jobs("dark-tower").Get(bg, name, metav1.GetOptions{})
	k.check(err)
	start := metav1.NewTime(time.Now().Add(-time.Minute))
	now := metav1.Now()
	j.Status.StartTime = &start
	interim, reason, msg := batchv1.JobSuccessCriteriaMet, "CompletionsReached", "Reached expected number of succeeded pods"
	if final == batchv1.JobFailed {
		interim, reason, msg = batchv1.JobFailureTarget, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
		j.Status.Failed = 7
	} else {
		j.Status.Succeeded = 1
		j.Status.CompletionTime = &now
	}
	j.Status.Conditions = []batchv1.JobCondition{
		{Type: interim, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
		{Type: final, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
	}
	_, err = k.cs.BatchV1().Jobs("dark-tower").UpdateStatus(bg, j, metav1.UpdateOptions{})
	k.check(err)
}

func (k *kube) networkPolicy(ns, name, app string) {
	k.t.Helper()
	_, err := k.cs.NetworkingV1().NetworkPolicies(ns).Create(bg, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: appLabels(app)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}, metav1.CreateOptions{})
	k.check(err)
}

// verifierKubeconfig applies the manifests' verifier RBAC, creates the
// verifier ServiceAccount and returns a kubeconfig holding a token of it.
func (k *kube) verifierKubeconfig(server, rbacFile string) string {
	k.t.Helper()
	applyRBAC(k.t, k.cs, rbacFile)
	_, err := k.cs.CoreV1().ServiceAccounts("dark-tower").Create(bg, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "verifier"}}, metav1.CreateOptions{})
	k.check(err)
	exp := int64(3600)
	tr, err := k.cs.CoreV1().ServiceAccounts("dark-tower").CreateToken(bg, "verifier",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	k.check(err)
	path := filepath.Join(k.t.TempDir(), "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: " + server + ", insecure-skip-tls-verify: true}\n" +
		"users:\n- name: verifier\n  user: {token: " + tr.Status.Token + "}\n" +
		"contexts:\n- name: verifier\n  context: {cluster: c, user: verifier}\ncurrent-context: verifier\n"
	k.check(os.WriteFile(path, []byte(kc), 0o600))
	return path
}

// applyRBAC creates the Roles and RoleBindings of a manifest file as written
// (namespace dark-tower where the file leaves it to Kustomize).
func applyRBAC(t *testing.T, cs kubernetes.Interface, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		switch o := obj.(type) {
		case *rbacv1.Role:
			if o.Namespace == "" {
				o.Namespace = "dark-tower"
			}
			_, err = cs.RbacV1().Roles(o.Namespace).Create(bg, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			if o.Namespace == "" {
				o.Namespace = "dark-tower"
			}
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(bg, o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: unexpected %T", file, obj)
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s: no RBAC objects", file)
	}
}
