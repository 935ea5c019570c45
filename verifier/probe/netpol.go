package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

var netpolChecks = []Spec{{
	ID:      "kubernetes.networkpolicy",
	Enabled: func(c *config.Config) bool { return c.Kubernetes != nil && c.Kubernetes.NetworkPolicy != nil },
	Targets: func(c *config.Config) []string {
		var tg []string
		for _, pp := range c.Kubernetes.NetworkPolicy.Allow {
			tg = append(tg, "allow "+pp.Pods+" :"+strconv.Itoa(pp.Port))
		}
		for _, pp := range c.Kubernetes.NetworkPolicy.Deny {
			tg = append(tg, "deny "+pp.Pods+" :"+strconv.Itoa(pp.Port))
		}
		return tg
	},
	Vars:  kubeVars,
	Probe: kubernetesNetworkPolicy,
}}

// kubernetesNetworkPolicy proves enforcement from the verifier's own pod,
// because Kind's CNI fails open when it cannot enforce: every deny port
// (an exporter only Prometheus may reach) must not accept a connection, and
// every allow port (Redis 6379) must, so that a pod network that is simply
// down is not mistaken for enforcement. Each port is dialled only after the
// API shows its pod Ready and the serving container ready, so a refused or
// dropped connection means the policy, not a port nobody listens on.
func kubernetesNetworkPolicy(ctx context.Context, t Target, log *slog.Logger) Result {
	k := t.Cfg.Kubernetes
	cs, err := t.Run.kubeClient(k)
	if err != nil {
		return Failed(err, "")
	}
	np := k.NetworkPolicy
	type probe struct {
		allow bool
		pp    config.PodPort
		ev    string
		err   error
		rank  int
	}
	var ps []*probe
	for _, pp := range np.Allow {
		ps = append(ps, &probe{allow: true, pp: pp})
	}
	for _, pp := range np.Deny {
		ps = append(ps, &probe{pp: pp})
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.ev, p.rank, p.err = dialPolicy(ctx, cs, k.Namespace, p.pp, p.allow, np.Dial())
		}()
	}
	wg.Wait()
	var lines []string
	var worst error
	top := 0
	for _, p := range ps {
		lines = append(lines, p.ev)
		if p.err != nil && p.rank > top {
			worst, top = p.err, p.rank
		}
	}
	if worst != nil {
		return Failed(worst, strings.Join(lines, "; "))
	}
	return Pass("%s", strings.Join(lines, "; "))
}

// What a failed port means, most telling first.
const (
	rankTargetNotReady = iota + 1
	rankAllowFailed
	rankAPIError
	rankNotEnforced
)

func dialPolicy(ctx context.Context, cs kubernetes.Interface, ns string, pp config.PodPort, allow bool, timeout time.Duration) (string, int, error) {
	verb := "deny"
	if allow {
		verb = "allow"
	}
	label := fmt.Sprintf("%s %s port %d", verb, pp.Pods, pp.Port)
	vars := map[string]string{"ns": ns, "detail": pp.Pods, "container": pp.Container, "app": appName(pp.Pods)}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: pp.Pods})
	if err != nil {
		return label + ": " + err.Error(), rankAPIError, classify.WithVars(err, vars)
	}
	pod, why := servingPod(pods.Items, pp.Container)
	if pod == nil {
		return label + ": " + why, rankTargetNotReady, classify.FailVars(classify.K8sNetpolTargetNotReady, vars,
			"%s: no pod ready with container %s to dial (%s)", label, pp.Container, why)
	}
	vars["pod"] = pod.Name
	if a := pod.Labels["app.kubernetes.io/name"]; a != "" {
		vars["app"] = a
	}
	addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(pp.Port))
	target := "pod/" + pod.Name + " " + addr
	d := net.Dialer{Timeout: timeout}
	start := time.Now()
	conn, derr := d.DialContext(ctx, "tcp", addr)
	took := time.Since(start).Round(time.Millisecond)
	if derr == nil {
		conn.Close()
	}
	switch {
	case allow && derr == nil:
		return fmt.Sprintf("%s (%s, container %s ready): connected in %s", verb, target, pp.Container, took), 0, nil
	case allow:
		return fmt.Sprintf("%s (%s): %s", verb, target, dialOutcome(derr, took)), rankAllowFailed,
			classify.At(target, classify.FailVars(classify.K8sNetpolAllowFailed, vars, "connect to %s, which NetworkPolicy allows, failed: %v", addr, derr))
	case derr != nil:
		return fmt.Sprintf("%s (%s, container %s ready): %s", verb, target, pp.Container, dialOutcome(derr, took)), 0, nil
	}
	// Connected to a port the policies deny: tell a CNI that does not enforce
	// from a namespace where no policy covers the pod at all.
	ev := fmt.Sprintf("%s (%s, container %s ready): CONNECTED in %s", verb, target, pp.Container, took)
	covering, err := ingressPolicies(ctx, cs, pod)
	if err != nil {
		return ev, rankNotEnforced, classify.At(target, classify.FailVars(classify.K8sNetpolNotEnforced, vars, "connected to %s, which NetworkPolicy should deny (policies not readable: %v)", addr, err))
	}
	if len(covering) == 0 {
		return ev + "; no NetworkPolicy restricts its ingress", rankNotEnforced, classify.At(target, classify.FailVars(classify.K8sNetpolMissing, vars,
			"connected to %s and no NetworkPolicy in %s restricts ingress to pod %s", addr, ns, pod.Name))
	}
	return ev + "; policies " + strings.Join(covering, ", ") + " select it", rankNotEnforced, classify.At(target, classify.FailVars(classify.K8sNetpolNotEnforced, vars,
		"connected to %s although NetworkPolicies %s restrict ingress to pod %s: NetworkPolicy is not enforced", addr, strings.Join(covering, ", "), pod.Name))
}

// servingPod picks the first Ready pod (by name) whose container is ready and
// which has an IP; otherwise it says what the pods look like.
func servingPod(pods []corev1.Pod, container string) (*corev1.Pod, string) {
	if len(pods) == 0 {
		return nil, "no pods match"
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	var states []string
	for i := range pods {
		p := &pods[i]
		cready, found := false, false
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == container {
				found, cready = true, c.Ready
			}
		}
		switch {
		case p.DeletionTimestamp != nil:
			states = append(states, p.Name+" terminating")
		case !found:
			states = append(states, p.Name+" has no running container "+container)
		case !cready:
			states = append(states, p.Name+" container "+container+" not ready")
		case !podReady(p):
			states = append(states, p.Name+" not Ready")
		case p.Status.PodIP == "":
			states = append(states, p.Name+" has no IP")
		default:
			return p, ""
		}
	}
	return nil, strings.Join(states, ", ")
}

// ingressPolicies names the policies of the pod's namespace that select it
// and restrict its ingress.
func ingressPolicies(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) ([]string, error) {
	list, err := cs.NetworkingV1().NetworkPolicies(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, np := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		// No policyTypes means Ingress (plus Egress when egress rules exist).
		if len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			out = append(out, np.Name)
		}
	}
	return out, nil
}

func dialOutcome(err error, took time.Duration) string {
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused in " + took.String() + " (rejected)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "no answer within " + took.String() + " (dropped)"
	}
	return "failed in " + took.String() + ": " + err.Error()
}

// appName is the value of app.kubernetes.io/name in a selector, for commands.
func appName(selector string) string {
	for _, part := range strings.Split(selector, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "app.kubernetes.io/name="); ok {
			return v
		}
	}
	return selector
}
