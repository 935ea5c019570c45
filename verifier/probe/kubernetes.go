package probe

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// The kubernetes section's checks (with migration.go and netpol.go) are
// independent of each other and of the service checks: each reads the API
// for itself, and a workload that is not ready is explained by
// kubernetes.workloads while the service checks say what it breaks.
var workloadChecks = []Spec{{
	ID:      "kubernetes.workloads",
	Enabled: func(c *config.Config) bool { return c.Kubernetes != nil && len(expectedWorkloads(c.Kubernetes)) > 0 },
	Targets: func(c *config.Config) []string {
		ws := expectedWorkloads(c.Kubernetes)
		tg := make([]string, len(ws))
		for i, w := range ws {
			tg[i] = w.String()
		}
		return tg
	},
	Vars:  kubeVars,
	Probe: kubernetesWorkloads,
}}

// kubeVars: {ns} of the next commands defaults to the section's namespace.
func kubeVars(c *config.Config) map[string]string {
	return map[string]string{"ns": c.Kubernetes.Namespace}
}

// kubeClient is the run's API client: in the pod its ServiceAccount, from
// the host kubernetes.kubeconfig. Read-only use: get and list, never a write.
func (r *Run) kubeClient(k *config.Kubernetes) (kubernetes.Interface, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kube != nil {
		return r.kube, nil
	}
	var rc *rest.Config
	var err error
	if k.Kubeconfig != "" {
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: k.Kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: k.Context}).ClientConfig()
		if err != nil {
			return nil, classify.Failf(classify.K8sClientConfig, "kubeconfig %s (context %q): %v", k.Kubeconfig, k.Context, err)
		}
	} else if rc, err = rest.InClusterConfig(); err != nil {
		return nil, classify.Failf(classify.K8sClientConfig, "not inside a pod with a ServiceAccount and no kubernetes.kubeconfig set: %v", err)
	}
	rc.UserAgent = "dark-tower-verifier"
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, classify.Failf(classify.K8sClientConfig, "client for %s: %v", rc.Host, err)
	}
	r.kube = cs
	return cs, nil
}

// workload is one expected controller: kind is deployment, statefulset or
// daemonset, as kubectl spells it.
type workload struct{ ns, kind, name string }

func (w workload) ref() string { return w.kind + "/" + w.name }

// String names it with its namespace, for evidence.
func (w workload) String() string { return w.ns + "/" + w.ref() }

func expectedWorkloads(k *config.Kubernetes) []workload {
	var out []workload
	for _, ns := range sortedKeys(k.Workloads) {
		w := k.Workloads[ns]
		for _, n := range w.Deployments {
			out = append(out, workload{ns, "deployment", n})
		}
		for _, n := range w.StatefulSets {
			out = append(out, workload{ns, "statefulset", n})
		}
		for _, n := range w.DaemonSets {
			out = append(out, workload{ns, "daemonset", n})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rollout is what a controller's status says, reduced to what readiness needs.
type rollout struct {
	want, ready, updated, total int32
	generation, observed        int64
	selector                    *metav1.LabelSelector
	failure                     string   // a ReplicaFailure condition: pods could not even be created
	images                      []string // the pod template's, so a report says which build it saw
}

func (r rollout) summary() string {
	s := fmt.Sprintf("%d/%d ready", r.ready, r.want)
	if len(r.images) > 0 {
		s += " (" + strings.Join(r.images, ", ") + ")"
	}
	if r.updated != r.want {
		s += fmt.Sprintf(", %d updated", r.updated)
	}
	if r.total > r.want {
		s += fmt.Sprintf(", %d pods of older revisions", r.total-r.want)
	}
	if r.observed < r.generation {
		s += fmt.Sprintf(", generation %d not yet observed (at %d)", r.generation, r.observed)
	}
	if r.failure != "" {
		s += ", " + r.failure
	}
	return s
}

func (r rollout) done() bool {
	return r.observed >= r.generation && r.ready == r.want && r.updated == r.want && r.total <= r.want
}

func getRollout(ctx context.Context, cs kubernetes.Interface, w workload) (rollout, error) {
	get := metav1.GetOptions{}
	switch w.kind {
	case "deployment":
		d, err := cs.AppsV1().Deployments(w.ns).Get(ctx, w.name, get)
		if err != nil {
			return rollout{}, err
		}
		r := rollout{want: replicas(d.Spec.Replicas), ready: d.Status.ReadyReplicas, updated: d.Status.UpdatedReplicas,
			total: d.Status.Replicas, generation: d.Generation, observed: d.Status.ObservedGeneration, selector: d.Spec.Selector,
			images: templateImages(d.Spec.Template)}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
				r.failure = "ReplicaFailure: " + c.Message
			}
		}
		return r, nil
	case "statefulset":
		s, err := cs.AppsV1().StatefulSets(w.ns).Get(ctx, w.name, get)
		if err != nil {
			return rollout{}, err
		}
		want := replicas(s.Spec.Replicas)
		updated := s.Status.UpdatedReplicas
		if s.Status.UpdateRevision == "" || s.Status.UpdateRevision == s.Status.CurrentRevision {
			updated = want // no revision in flight; OnDelete sets never count up
		}
		return rollout{want: want, ready: s.Status.ReadyReplicas, updated: updated, total: s.Status.Replicas,
			generation: s.Generation, observed: s.Status.ObservedGeneration, selector: s.Spec.Selector,
			images: templateImages(s.Spec.Template)}, nil
	default:
		d, err := cs.AppsV1().DaemonSets(w.ns).Get(ctx, w.name, get)
		if err != nil {
			return rollout{}, err
		}
		return rollout{want: d.Status.DesiredNumberScheduled, ready: d.Status.NumberReady, updated: d.Status.UpdatedNumberScheduled,
			total: d.Status.CurrentNumberScheduled, generation: d.Generation, observed: d.Status.ObservedGeneration, selector: d.Spec.Selector,
			images: templateImages(d.Spec.Template)}, nil
	}
}

// templateImages names the images of a pod template's containers, short:
// the last path element and the tag, without the digest, a 64-hex tag
// (Skaffold's inputDigest) cut to 12 characters, enough to tell one build
// of ours from the next.
func templateImages(pt corev1.PodTemplateSpec) []string {
	var out []string
	for _, c := range pt.Spec.Containers {
		ref, _, _ := strings.Cut(c.Image, "@")
		ref = ref[strings.LastIndex(ref, "/")+1:]
		if name, tag, ok := strings.Cut(ref, ":"); ok && len(tag) == 64 {
			ref = name + ":" + tag[:12]
		}
		out = append(out, ref)
	}
	return out
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1 // the API's default
	}
	return *p
}

type workloadVerdict struct {
	w        workload
	evidence string
	err      error
	rank     int
}

// kubernetesWorkloads: every expected Deployment, StatefulSet and DaemonSet
// has as many ready (and updated) replicas as it wants, at its newest
// generation. Evidence names the ones that are not, with their pods' reasons.
func kubernetesWorkloads(ctx context.Context, t Target, log *slog.Logger) Result {
	k := t.Cfg.Kubernetes
	cs, err := t.Run.kubeClient(k)
	if err != nil {
		return Failed(err, "")
	}
	ws := expectedWorkloads(k)
	out := make([]workloadVerdict, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = checkWorkload(ctx, cs, w)
		}()
	}
	wg.Wait()
	var bad, good []string
	var worst *workloadVerdict
	for i := range out {
		v := &out[i]
		if v.err == nil {
			good = append(good, v.w.String()+" "+v.evidence)
			continue
		}
		bad = append(bad, v.w.String()+" "+v.evidence)
		if worst == nil || v.rank > worst.rank {
			worst = v
		}
	}
	obs := ""
	if len(bad) > 0 {
		obs = "not ready: " + strings.Join(bad, "; ")
	}
	if len(good) > 0 {
		if obs != "" {
			obs += " | "
		}
		obs += "ready: " + strings.Join(good, ", ")
	}
	if worst != nil {
		return Failed(classify.At(worst.w.String(), worst.err), obs)
	}
	return Pass("%s", obs)
}

func checkWorkload(ctx context.Context, cs kubernetes.Interface, w workload) workloadVerdict {
	vars := map[string]string{"ns": w.ns, "workload": w.ref()}
	r, err := getRollout(ctx, cs, w)
	if apierrors.IsNotFound(err) {
		return workloadVerdict{w: w, evidence: "not found", rank: rankMissing,
			err: classify.FailVars(classify.K8sWorkloadMissing, vars, "%s not found in namespace %s", w.ref(), w.ns)}
	}
	if err != nil {
		return workloadVerdict{w: w, evidence: err.Error(), rank: rankAPI, err: classify.WithVars(err, vars)}
	}
	if r.done() {
		return workloadVerdict{w: w, evidence: r.summary()}
	}
	issues, err := selectorPods(ctx, cs, w.ns, r.selector)
	if err != nil {
		return workloadVerdict{w: w, evidence: r.summary() + "; pods: " + err.Error(), rank: rankAPI, err: classify.WithVars(err, vars)}
	}
	ev := r.summary()
	if lines := issues.lines(); lines != "" {
		ev += " [" + lines + "]"
	}
	v := workloadVerdict{w: w, evidence: ev}
	msg := fmt.Sprintf("%s in %s: %s", w.ref(), w.ns, r.summary())
	switch top := issues.worst(); {
	case top != nil && top.rank > rankNotReady:
		v.rank = top.rank
		v.err = classify.FailVars(top.class, top.vars(w), "%s; %s", msg, top.text)
	case r.observed < r.generation || r.updated != r.want || r.total > r.want:
		v.rank = rankRollout
		v.err = classify.FailVars(classify.K8sRolloutPending, vars, "%s", msg)
	default:
		v.rank = rankNotReady
		if top != nil {
			v.err = classify.FailVars(classify.K8sWorkloadNotReady, top.vars(w), "%s; %s", msg, top.text)
		} else {
			v.err = classify.FailVars(classify.K8sWorkloadNotReady, vars, "%s", msg)
		}
	}
	return v
}

// Severity of what was found, so the check reports the most telling one.
const (
	rankNotReady = iota + 1
	rankRollout
	rankMissing
	rankUnschedulable
	rankCrashLoop
	rankImage
	rankConfig
	rankAPI
)

// podIssue is one reason a pod is not ready.
type podIssue struct {
	class                        classify.Class
	pod, container, detail, text string
	rank                         int
}

func (p *podIssue) vars(w workload) map[string]string {
	return map[string]string{"ns": w.ns, "workload": w.ref(), "pod": p.pod, "container": p.container, "detail": p.detail}
}

type podIssues []podIssue

func (ps podIssues) worst() *podIssue {
	var top *podIssue
	for i := range ps {
		if top == nil || ps[i].rank > top.rank {
			top = &ps[i]
		}
	}
	return top
}

// lines joins the issues, at most eight, so evidence stays readable.
func (ps podIssues) lines() string {
	var s []string
	for i, p := range ps {
		if i == 8 {
			s = append(s, fmt.Sprintf("and %d more", len(ps)-i))
			break
		}
		s = append(s, p.text)
	}
	return strings.Join(s, "; ")
}

func selectorPods(ctx context.Context, cs kubernetes.Interface, ns string, sel *metav1.LabelSelector) (podIssues, error) {
	if sel == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) == 0 {
		return podIssues{{class: classify.K8sWorkloadNotReady, rank: rankNotReady, text: "no pods (" + s.String() + ")"}}, nil
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	var out podIssues
	for i := range pods.Items {
		out = append(out, podProblems(&pods.Items[i])...)
	}
	return out, nil
}

// podProblems says why a pod is not ready: its containers' waiting reasons
// with the kubelet's message, crashed containers' last exit, or why it is
// not scheduled. A ready pod has none.
func podProblems(p *corev1.Pod) podIssues {
	if podReady(p) && p.DeletionTimestamp == nil {
		return nil
	}
	var out podIssues
	add := func(class classify.Class, rank int, container, detail, format string, a ...any) {
		out = append(out, podIssue{class: class, rank: rank, pod: p.Name, container: container, detail: detail,
			text: "pod " + p.Name + ": " + fmt.Sprintf(format, a...)})
	}
	if p.DeletionTimestamp != nil {
		add(classify.K8sWorkloadNotReady, rankNotReady, "", "", "terminating")
		return out
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			add(classify.K8sUnschedulable, rankUnschedulable, "", c.Message, "not scheduled (%s): %s", c.Reason, c.Message)
		}
	}
	statuses := func(kind string, list []corev1.ContainerStatus) {
		for _, cs := range list {
			switch {
			case cs.State.Waiting != nil:
				wt := cs.State.Waiting
				class, rank := waitingClass(wt.Reason)
				text := kind + " " + cs.Name + " " + wt.Reason
				if wt.Message != "" {
					text += ": " + wt.Message
				}
				if lt := cs.LastTerminationState.Terminated; lt != nil {
					text += fmt.Sprintf(" (last exit code %d, %s, %d restarts)", lt.ExitCode, lt.Reason, cs.RestartCount)
				}
				add(class, rank, cs.Name, wt.Message, "%s", text)
			case cs.State.Terminated != nil && kind == "container":
				tm := cs.State.Terminated
				add(classify.K8sCrashLoop, rankCrashLoop, cs.Name, tm.Message, "container %s terminated: exit code %d, %s %s", cs.Name, tm.ExitCode, tm.Reason, tm.Message)
			case cs.State.Running != nil && !cs.Ready && kind == "container":
				add(classify.K8sWorkloadNotReady, rankNotReady, cs.Name, "", "container %s running, not ready (readiness probe failing), %d restarts", cs.Name, cs.RestartCount)
			}
		}
	}
	statuses("init container", p.Status.InitContainerStatuses)
	statuses("container", p.Status.ContainerStatuses)
	if len(out) == 0 {
		add(classify.K8sWorkloadNotReady, rankNotReady, "", "", "phase %s, not ready", p.Status.Phase)
	}
	return out
}

func waitingClass(reason string) (classify.Class, int) {
	switch reason {
	case "CreateContainerConfigError", "CreateContainerError":
		return classify.K8sConfigError, rankConfig
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
		return classify.K8sImagePull, rankImage
	case "CrashLoopBackOff", "RunContainerError":
		return classify.K8sCrashLoop, rankCrashLoop
	}
	return classify.K8sWorkloadNotReady, rankNotReady // ContainerCreating, PodInitializing...
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
