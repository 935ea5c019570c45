#!/usr/bin/env bash
# Creates (or updates) the stack's namespaces, infra/namespaces, before
# Skaffold deploys into them: the `datastores` config's before-deploy hook
# runs it on every deploy. They are not among the manifests Skaffold
# deploys, so neither `skaffold delete` (make delete) nor the end or failure
# of `skaffold dev` deletes them, and with them the Postgres and Redis
# volumes (their PersistentVolumeClaims come from the StatefulSets, not from
# Skaffold) and a failed deploy's evidence. To start from nothing:
#   kubectl delete namespace dark-tower dark-tower-observability
# Environment: KUBECTL (command, may carry --context; default the kubectl on
# PATH with Skaffold's kube-context).
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl${SKAFFOLD_KUBE_CONTEXT:+ --context $SKAFFOLD_KUBE_CONTEXT}}
# KUBECTL is deliberately unquoted: it may be "bin/kubectl --context NAME".
$KUBECTL apply --server-side --field-manager=dark-tower -k "$(dirname "$0")/../infra/namespaces"
