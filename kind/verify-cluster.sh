#!/usr/bin/env bash
# Runs the verifier once inside the cluster as job/verifier, streams its report
# and exits with the verifier's own exit code (0 healthy, 1 a check failed,
# 2 bad configuration or usage, 3 deadline reached). `make verify-cluster` and
# Skaffold's after-deploy hook call it from the repository root.
#
# The Job is recreated on every run (Jobs are immutable) from
# infra/services/verifier/job.yaml, with the image Skaffold deployed for the
# verifier Deployment, so the run always checks with the current verifier.
#
# Environment: KUBECTL (command, may carry --context), START_TIMEOUT (seconds
# for the pod to start, default 180).
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl}
NS=dark-tower
JOB=verifier
JOB_FILE=infra/services/verifier/job.yaml
START_TIMEOUT=${START_TIMEOUT:-180}
SELECTOR=batch.kubernetes.io/job-name=$JOB

# KUBECTL is deliberately unquoted: it may be "bin/kubectl --context NAME".
k() { $KUBECTL -n "$NS" "$@"; }
say() { echo "verify-cluster: $*" >&2; }

if ! img=$(k get deployment verifier -o jsonpath='{.spec.template.spec.containers[?(@.name=="verifier")].image}' 2>&1); then
  case $img in
    *NotFound* | *"not found"*) say "no verifier Deployment in namespace $NS; deploy the stack first (make run)" ;;
    *) say "cannot reach the cluster: ${img%%$'\n'*}" ;;
  esac
  exit 2
fi

k delete job "$JOB" --ignore-not-found --wait=true >/dev/null
# `set image --local` prints nothing when the image is already the file's.
if [[ $img == "$(sed -n 's/^ *image: *//p' "$JOB_FILE" | head -n1)" ]]; then
  k create -f "$JOB_FILE" >/dev/null
else
  $KUBECTL set image --local -f "$JOB_FILE" "verifier=$img" -o yaml | k create -f - >/dev/null
fi
say "job/$JOB started ($img)"

# kubectl logs cannot follow a container that has not started yet.
deadline=$((SECONDS + START_TIMEOUT))
while :; do
  phase=$(k get pods -l "$SELECTOR" -o jsonpath='{.items[0].status.phase}' 2>/dev/null || true)
  case $phase in Running | Succeeded | Failed) break ;; esac
  if ((SECONDS >= deadline)); then
    reason=$(k get pods -l "$SELECTOR" -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}' 2>/dev/null || true)
    say "the verifier pod did not start within ${START_TIMEOUT}s (phase ${phase:-none}${reason:+, $reason}); next: $KUBECTL -n $NS describe pods -l $SELECTOR"
    exit 2
  fi
  sleep 1
done

k logs -f "job/$JOB" || true

# The kubelet reports the exit code shortly after the log stream ends.
for _ in $(seq 1 30); do
  code=$(k get pods -l "$SELECTOR" -o jsonpath='{.items[0].status.containerStatuses[?(@.name=="verifier")].state.terminated.exitCode}' 2>/dev/null || true)
  if [[ -n $code ]]; then
    exit "$code"
  fi
  sleep 1
done
say "could not read the verifier's exit code; next: $KUBECTL -n $NS describe job $JOB"
exit 2
