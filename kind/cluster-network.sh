#!/usr/bin/env bash
# Writes infra/overlays/remote/cluster-network.env, the two values of the
# cluster's own network that the `remote` profile's NetworkPolicies need
# (infra/overlays/remote/kustomization.yaml says where they go). Skaffold's
# render before-hook runs it for the `remote` profile.
#   POD_CIDR               from the environment, else kubeadm's podSubnet
#                          (kube-system/kubeadm-config), else the podCIDR of
#                          the only node; a cluster where none of these says
#                          it (most managed ones) needs it set by hand
#   KUBERNETES_SERVICE_IP  from the environment, else the ClusterIP of
#                          service default/kubernetes
# The file is rewritten only when a value changed: `skaffold dev` watches it.
# Environment: KUBECTL (command, may carry --context; default the kubectl on
# PATH with Skaffold's kube-context), POD_CIDR, KUBERNETES_SERVICE_IP.
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl${SKAFFOLD_KUBE_CONTEXT:+ --context $SKAFFOLD_KUBE_CONTEXT}}
FILE=$(dirname "$0")/../infra/overlays/remote/cluster-network.env
say() { echo "cluster-network: $*" >&2; }

ipv4='(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}'

pod_cidr=${POD_CIDR:-}
if [[ -z $pod_cidr ]]; then
  # KUBECTL is deliberately unquoted: it may be "bin/kubectl --context NAME".
  pod_cidr=$($KUBECTL -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' 2>/dev/null |
    sed -n 's/^ *podSubnet: *//p' | cut -d, -f1 || true)
fi
if [[ -z $pod_cidr ]]; then
  nodes=$($KUBECTL get nodes -o jsonpath='{range .items[*]}{.spec.podCIDR}{"\n"}{end}' 2>/dev/null | sort -u || true)
  if [[ -n $nodes && $nodes != *$'\n'* ]]; then
    pod_cidr=$nodes
  fi
fi
if [[ -z $pod_cidr ]]; then
  say "cannot tell the cluster's pod network: set POD_CIDR (e.g. POD_CIDR=10.8.0.0/14; GKE: clusterIpv4Cidr of gcloud container clusters describe; EKS with the VPC CNI: the VPC's CIDR) and run again"
  exit 1
fi
if ! [[ $pod_cidr =~ ^${ipv4}/([0-9]|[12][0-9]|3[0-2])$ ]]; then
  say "POD_CIDR=$pod_cidr is not an IPv4 CIDR such as 10.244.0.0/16"
  exit 1
fi

svc_ip=${KUBERNETES_SERVICE_IP:-}
if [[ -z $svc_ip ]] && ! svc_ip=$($KUBECTL -n default get service kubernetes -o jsonpath='{.spec.clusterIP}' 2>&1); then
  say "cannot read service default/kubernetes (${svc_ip%%$'\n'*}): set KUBERNETES_SERVICE_IP and run again"
  exit 1
fi
if ! [[ $svc_ip =~ ^${ipv4}$ ]]; then
  say "KUBERNETES_SERVICE_IP=$svc_ip is not an IPv4 address such as 10.96.0.1"
  exit 1
fi

want=$(printf 'POD_CIDR=%s\nKUBERNETES_SERVICE_IP=%s\n' "$pod_cidr" "$svc_ip")
if [[ ! -f $FILE || $(<"$FILE") != "$want" ]]; then
  printf '%s\n' "$want" >"$FILE"
  say "pod network $pod_cidr, kubernetes Service $svc_ip (written to ${FILE#*/../})"
fi
