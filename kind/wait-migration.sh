#!/usr/bin/env bash
# Waits until job/db-migrate has completed (exit 0) or failed (exit 1, with its
# log), for at most MIGRATE_WAIT_TIMEOUT seconds (default 300). Skaffold's
# `datastores` after-hook runs it directly, so the apps are deployed
# onto a schema. `kubectl wait` alone would sit out its whole timeout on a
# failed Job. Environment: KUBECTL (command, may carry --context; default the
# kubectl on PATH with Skaffold's kube-context).
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl${SKAFFOLD_KUBE_CONTEXT:+ --context $SKAFFOLD_KUBE_CONTEXT}}
NS=dark-tower
TIMEOUT=${MIGRATE_WAIT_TIMEOUT:-300}

k() { $KUBECTL -n "$NS" "$@"; }
say() { echo "migrate-wait: $*" >&2; }

deadline=$((SECONDS + TIMEOUT))
while :; do
  conds=" $(k get job db-migrate -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}' 2>/dev/null || true) "
  case $conds in
    *" Complete "*)
      say "job/db-migrate completed"
      exit 0
      ;;
    *" Failed "*)
      say "job/db-migrate failed; its last log lines:"
      k logs job/db-migrate --tail=30 >&2 || true
      say "next: $KUBECTL -n $NS describe job db-migrate"
      exit 1
      ;;
  esac
  if ((SECONDS >= deadline)); then
    say "job/db-migrate did not finish within ${TIMEOUT}s; next: $KUBECTL -n $NS logs job/db-migrate"
    exit 1
  fi
  sleep 2
done
