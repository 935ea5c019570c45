package probe

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

var migrationChecks = []Spec{{
	ID:      "kubernetes.migration",
	Enabled: func(c *config.Config) bool { return c.Kubernetes != nil && c.Kubernetes.MigrationJob != "" },
	Targets: func(c *config.Config) []string {
		return []string{c.Kubernetes.Namespace + "/job/" + c.Kubernetes.MigrationJob}
	},
	Vars:  kubeVars,
	Probe: kubernetesMigration,
}}

// kubernetesMigration: the migration Job has a Complete condition. A Failed
// condition is definite (the Job controller has given up); a Job still
// running is retried, unless its pod cannot even start (a missing Secret
// key, an image that cannot be pulled), which is reported as such.
func kubernetesMigration(ctx context.Context, t Target, log *slog.Logger) Result {
	k := t.Cfg.Kubernetes
	cs, err := t.Run.kubeClient(k)
	if err != nil {
		return Failed(err, "")
	}
	w := workload{ns: k.Namespace, kind: "job", name: k.MigrationJob}
	vars := map[string]string{"ns": w.ns, "workload": w.ref()}
	target := w.String()
	job, err := cs.BatchV1().Jobs(w.ns).Get(ctx, w.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Failed(classify.At(target, classify.FailVars(classify.K8sMigrationMissing, vars, "job %s not found in namespace %s", w.name, w.ns)), "not found")
	}
	if err != nil {
		return Failed(classify.At(target, classify.WithVars(err, vars)), "")
	}
	counts := fmt.Sprintf("active %d, succeeded %d, failed %d", job.Status.Active, job.Status.Succeeded, job.Status.Failed)
	if c := jobCondition(job, batchv1.JobComplete); c != nil {
		return Pass("%s Complete at %s (%s)", target, c.LastTransitionTime.UTC().Format(time.RFC3339), counts)
	}
	issues, perr := selectorPods(ctx, cs, w.ns, job.Spec.Selector)
	obs := counts
	if perr == nil {
		if lines := issues.lines(); lines != "" {
			obs += " [" + lines + "]"
		}
	}
	if c := jobCondition(job, batchv1.JobFailed); c != nil {
		v := map[string]string{"ns": w.ns, "workload": w.ref(), "detail": c.Reason + ": " + c.Message}
		return Failed(classify.At(target, classify.FailVars(classify.K8sMigrationFailed, v, "job %s failed: %s: %s", w.name, c.Reason, c.Message)), obs)
	}
	if top := issues.worst(); top != nil && top.rank >= rankImage {
		return Failed(classify.At(target, classify.FailVars(top.class, top.vars(w), "job %s cannot start: %s", w.name, top.text)), obs)
	}
	return Failed(classify.At(target, classify.FailVars(classify.K8sMigrationRunning, vars, "job %s has not completed (%s)", w.name, counts)), obs)
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}
