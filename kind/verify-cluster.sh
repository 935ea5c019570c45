#!/usr/bin/env bash
# Runs the verifier once inside the cluster as job/verifier, streams its report
# and exits with the verifier's own exit code (0 healthy, 1 a check failed,
# 2 bad configuration or usage, 3 deadline reached). Skaffold's after-deploy
# hook runs it directly (make would turn every failure into exit status 2);
# `make verify-cluster` runs it for people.
#
# Before the Job starts, every Deployment, StatefulSet and DaemonSet of both
# namespaces must have finished rolling out: Skaffold's status check covers
# only what it saw first (one monitor per kube-context, built with the first
# config's namespaces), so it neither waits for observability nor, from the
# second iteration on, for the apps.
#
# The Job is recreated on every run (Jobs are immutable) from
# infra/services/verifier/job.yaml, with the image Skaffold deployed for the
# verifier Deployment, so the run always checks with the current verifier.
# Only the new Job's pod is read: it is found by the Job's uid, never by name.
#
# Environment: KUBECTL (command, may carry --context; default the kubectl on
# PATH with Skaffold's kube-context), ROLLOUT_TIMEOUT (seconds, default 300),
# START_TIMEOUT (seconds for the pod to start, default 180), VERIFIER_DEADLINE
# (the verifier's deadline for this run, e.g. 60s; default its config's, 180s).
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl${SKAFFOLD_KUBE_CONTEXT:+ --context $SKAFFOLD_KUBE_CONTEXT}}
NS=dark-tower
NAMESPACES=(dark-tower dark-tower-observability)
JOB=verifier
JOB_FILE=infra/services/verifier/job.yaml
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300}
START_TIMEOUT=${START_TIMEOUT:-180}

# KUBECTL is deliberately unquoted: it may be "bin/kubectl --context NAME".
k() { $KUBECTL -n "$NS" "$@"; }
say() { echo "verify-cluster: $*" >&2; }
# elapsed T0: seconds since T0 (an $EPOCHREALTIME), to a tenth.
elapsed() { local us=$((${EPOCHREALTIME/./} - ${1/./})); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }

if ! img=$(k get deployment verifier -o jsonpath='{.spec.template.spec.containers[?(@.name=="verifier")].image}' 2>&1); then
  case $img in
    *NotFound* | *"not found"*) say "no verifier Deployment in namespace $NS; deploy the stack first (make run)" ;;
    *) say "cannot reach the cluster: ${img%%$'\n'*}" ;;
  esac
  exit 2
fi

# Every rollout, both namespaces, waited for at once (one kubectl each, so
# the wait is the slowest rollout's, not their sum). One that does not
# finish is reported and the verifier still runs: its kubernetes.workloads
# check says which pods are not ready and why.
t0=$EPOCHREALTIME
n=0
for ns in "${NAMESPACES[@]}"; do
  for w in $($KUBECTL -n "$ns" get deployments,statefulsets,daemonsets -o name); do
    n=$((n + 1))
    (
      if ! out=$($KUBECTL -n "$ns" rollout status "$w" --timeout="${ROLLOUT_TIMEOUT}s" 2>&1); then
        say "$ns/$w has not finished rolling out: ${out##*$'\n'}; next: $KUBECTL -n $ns describe $w"
      fi
    ) &
  done
done
wait
say "waited $(elapsed "$t0")s for $n rollouts"

# The previous run's Job and its pods are gone before the new one starts.
k delete job "$JOB" --ignore-not-found --cascade=foreground --wait=true >/dev/null
# `set image --local` prints nothing when the image is already the file's.
job=$(<"$JOB_FILE")
if [[ $img != "$(sed -n 's/^ *image: *//p' "$JOB_FILE" | head -n1)" ]]; then
  job=$($KUBECTL set image --local -f "$JOB_FILE" "verifier=$img" -o yaml)
fi
if [[ -n ${VERIFIER_DEADLINE:-} ]]; then
  job=$(printf '%s\n' "$job" | $KUBECTL set env --local -f - -c verifier "VERIFIER_DEADLINE=$VERIFIER_DEADLINE" -o yaml)
fi
uid=$(printf '%s\n' "$job" | k create -f - -o jsonpath='{.metadata.uid}')
SELECTOR=batch.kubernetes.io/controller-uid=$uid
say "job/$JOB started ($img, uid $uid)"

# kubectl logs cannot follow a container that has not started yet.
deadline=$((SECONDS + START_TIMEOUT))
while :; do
  read -r pod phase < <(k get pods -l "$SELECTOR" -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' 2>/dev/null | tail -n1) || true
  case ${phase:-} in Running | Succeeded | Failed) break ;; esac
  if ((SECONDS >= deadline)); then
    reason=$(k get pods -l "$SELECTOR" -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}' 2>/dev/null || true)
    say "the verifier pod did not start within ${START_TIMEOUT}s (phase ${phase:-none}${reason:+, $reason}); next: $KUBECTL -n $NS describe pods -l $SELECTOR"
    exit 2
  fi
  sleep 0.2
done

say "reading pod $pod of job/$JOB (uid $uid)"
k logs -f "pod/$pod" -c verifier || true

# The Job's own verdict: Complete or Failed, set once its pod has ended.
cond=""
until [[ -n $cond ]]; do
  cond=$(k get job "$JOB" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}' | grep -oE 'Complete|Failed' | head -n1 || true)
  [[ -n $cond ]] || sleep 0.2
done
code=$(k get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="verifier")].state.terminated.exitCode}')
if [[ -z $code ]]; then
  say "job/$JOB is $cond but its pod $pod reported no exit code; next: $KUBECTL -n $NS describe job $JOB"
  exit 2
fi
exit "$code"
