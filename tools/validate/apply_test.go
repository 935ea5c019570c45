package validate

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/darktower/devstack/internal/kubeapi"
	"github.com/darktower/devstack/internal/manifest"
)

var (
	apiOnce sync.Once
	api     *kubeapi.Server
	apiErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if api != nil {
		api.Stop()
	}
	os.Exit(code)
}

// cluster returns the shared throwaway API server, started on first use.
func apiServer(t *testing.T) *kubeapi.Server {
	t.Helper()
	bin := Tool(t, "kube-apiserver")
	apiOnce.Do(func() { api, apiErr = kubeapi.Start(bin) })
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return api
}

// warnings collects the Warning headers of every response.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// applier server-side applies objects and reports every warning, object by object.
type applier struct {
	t      *testing.T
	dyn    dynamic.Interface
	kube   kubernetes.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	warn   *warnings
}

func newApplier(t *testing.T) *applier {
	cfg := rest.CopyConfig(apiServer(t).Config())
	w := &warnings{}
	cfg.WarningHandler = w
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{t: t, dyn: dynamic.NewForConfigOrDie(cfg), kube: kubernetes.NewForConfigOrDie(cfg),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), warn: w}
}

// apply server-side applies o; errors and warnings fail the test, naming the object.
func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) {
	a.t.Helper()
	ref := fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	warns, err := a.try(ctx, o, dryRun)
	if err != nil {
		a.t.Errorf("server-side apply of %s: %v", ref, err)
	}
	for _, w := range warns {
		a.t.Errorf("server-side apply of %s: warning: %s", ref, w)
	}
}

// try server-side applies o and returns the warnings the API server sent.
func (a *applier) try(ctx context.Context, o *unstructured.Unstructured, dryRun bool) ([]string, error) {
	gvk := o.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	for deadline := time.Now().Add(15 * time.Second); meta.IsNoMatchError(err) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond) // discovery lags an established CRD briefly; poll
		a.mapper.Reset()
		mapping, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("the API server does not serve this kind: %w", err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return nil, fmt.Errorf("namespaced object without metadata.namespace (it would land in the deployer's current namespace)")
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
	}
	opts := metav1.ApplyOptions{FieldManager: "dark-tower-validate", Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	a.warn.take()
	_, err = ri.Apply(ctx, o.GetName(), o, opts)
	return a.warn.take(), err
}

// applyAll applies namespaces first, then CRDs, then everything else in rendered order.
func (a *applier) applyAll(ctx context.Context, objs []*unstructured.Unstructured) {
	a.t.Helper()
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	for r := 0; r <= 2; r++ {
		for _, o := range objs {
			if rank(o) == r {
				a.apply(ctx, o, false)
			}
		}
		if r == 1 {
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					a.waitEstablished(ctx, o.GetName())
				}
			}
			a.mapper.Reset()
		}
	}
}

// waitEstablished polls a CRD until its Established condition is True.
func (a *applier) waitEstablished(ctx context.Context, name string) {
	a.t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := a.dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("CustomResourceDefinition %s not established after 30s (last error: %v)", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensureDefaultServiceAccounts does what kube-controller-manager would: a pod without
// serviceAccountName is admitted only when the namespace's "default" ServiceAccount exists.
func (a *applier) ensureDefaultServiceAccounts(ctx context.Context, namespaces ...string) {
	for _, ns := range namespaces {
		_, err := a.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			a.t.Fatalf("create default ServiceAccount in %s: %v", ns, err)
		}
	}
}

// TestApplyKindOverlay applies everything `kubectl kustomize infra/overlays/kind` renders (and
// the verifier Job that make verify-cluster creates from its own file) to a real kube-apiserver of the node image's version, server-side, and fails on any error or
// warning (Pod Security among them). Then every pod template is created as a Pod in dry-run
// mode, so Pod Security's enforce level (not only warn) judges every pod.
func TestApplyKindOverlay(t *testing.T) {
	m := WithFiles(t, InCluster(t, KindOverlay), VerifierJob)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newApplier(t)
	if v, err := a.kube.Discovery().ServerVersion(); err != nil || v.GitVersion != pinnedKubernetesVersion(t) {
		t.Fatalf("the API server reports %v (%v); the node image runs %s", v, err, pinnedKubernetesVersion(t))
	}
	a.applyAll(ctx, m.Objects)
	if t.Failed() {
		return
	}
	checkNamespacesRestricted(t, m)
	var nss []string
	for _, ns := range m.OfKind("Namespace") {
		nss = append(nss, ns.GetName())
	}
	a.ensureDefaultServiceAccounts(ctx, nss...)
	for _, w := range Workloads(t, m) {
		p := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(w.Kind) + "-" + w.Name, Namespace: w.Namespace, Labels: w.Template.Labels, Annotations: w.Template.Annotations},
			Spec:       *w.Template.Spec.DeepCopy(),
		}
		// As the StatefulSet controller does: one claim per template, named <template>-<pod>.
		for _, c := range w.ClaimTemplates {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c + "-" + w.Name + "-0"}}})
		}
		a.warn.take()
		_, err := a.kube.CoreV1().Pods(w.Namespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Errorf("%s: a pod from its template is refused: %v", w.Ref(), err)
		}
		for _, msg := range a.warn.take() {
			t.Errorf("%s: a pod from its template draws a warning: %s", w.Ref(), msg)
		}
	}
}

// TestApplyOperatorProfile installs the Prometheus operator's ServiceMonitor CRD (from the
// operator's module, the version of the types used to decode them) and applies the operator
// profile's ServiceMonitors on top of the namespaces.
func TestApplyOperatorProfile(t *testing.T) {
	ops := Render(t, ServiceMonitorsDir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newApplier(t)
	crd := serviceMonitorCRD(t)
	a.applyAll(ctx, append(append(Render(t, NamespacesDir).Objects, crd), ops.Objects...))
	if n := len(ops.OfKind("ServiceMonitor")); n == 0 {
		t.Errorf("%s renders no ServiceMonitor", ServiceMonitorsDir)
	}
}

func checkNamespacesRestricted(t *testing.T, m manifest.Set) {
	t.Helper()
	want := map[string]bool{NS: false, ObsNS: false}
	for _, ns := range m.OfKind("Namespace") {
		l := ns.GetLabels()
		for _, mode := range []string{"enforce", "warn", "audit"} {
			if got := l["pod-security.kubernetes.io/"+mode]; got != "restricted" {
				t.Errorf("Namespace %s: pod-security.kubernetes.io/%s=%q, want restricted", ns.GetName(), mode, got)
			}
		}
		if _, ok := want[ns.GetName()]; ok {
			want[ns.GetName()] = true
		}
	}
	for ns, seen := range want {
		if !seen {
			t.Errorf("Namespace %s is not rendered by %s", ns, m.Source)
		}
	}
}

// TestApplyReportsPodSecurityWarnings proves the harness sees what it checks for: a Deployment
// that breaks the restricted profile, applied into a restricted namespace, draws warnings.
func TestApplyReportsPodSecurityWarnings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newApplier(t)
	objs, err := manifest.Decode([]byte(`apiVersion: v1
kind: Namespace
metadata:
  name: validate-selftest
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: loose
  namespace: validate-selftest
spec:
  selector:
    matchLabels: {app: loose}
  template:
    metadata:
      labels: {app: loose}
    spec:
      containers:
        - name: c
          image: example.invalid/loose:1
`))
	if err != nil {
		t.Fatal(err)
	}
	if w, err := a.try(ctx, objs[0], false); err != nil || len(w) > 0 {
		t.Fatalf("namespace: %v %v", err, w)
	}
	w, err := a.try(ctx, objs[1], false)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) == 0 || !strings.Contains(strings.Join(w, "\n"), "restricted") {
		t.Fatalf("a Deployment breaking the restricted profile drew no Pod Security warning (warnings: %q)", w)
	}
}
