# The stack in a Kind cluster, driven by Skaffold (docs/kind.md).
# Tools are the pinned builds of mk/tools.mk: $(BIN)/kind, $(BIN)/skaffold,
# $(BIN)/kubectl. Everything here needs a Docker engine except verify-cluster
# and migrate-wait, which only need a reachable cluster.

KIND_CLUSTER := dark-tower
KIND_CONFIG  := kind/kind-config.yaml
KIND_CONTEXT := kind-$(KIND_CLUSTER)
# Skaffold's hooks run with SKAFFOLD_KUBE_CONTEXT set (e.g. the `remote`
# profile's cluster); by hand the Kind cluster is meant.
KIND_KUBE_CONTEXT = $(or $(SKAFFOLD_KUBE_CONTEXT),$(KIND_CONTEXT))
KIND_KUBECTL      = $(BIN)/kubectl --context $(KIND_KUBE_CONTEXT)
# Skaffold calls kubectl and kind by name (and make, for its hooks): the
# pinned ones come first on PATH.
KIND_SKAFFOLD     = PATH="$(BIN):$$PATH" $(BIN)/skaffold
SKAFFOLD_FLAGS   ?=

# Non-empty when the Kind cluster exists (no Docker, no kind build: empty).
# Lazily evaluated, so merely including this file runs nothing.
KIND_CLUSTER_UP = $(shell test -x $(BIN)/kind && $(BIN)/kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) && echo yes)

.PHONY: dev run delete kind-up kind-down kind-running kind-docker kind-skew verify-cluster migrate-wait operator-install

# PROFILE=node deploys to the node of mk/node.mk instead of Kind: its
# kubeconfig, its Docker engine, its local registry, Skaffold profile `node`.
PROFILE ?=
ifeq ($(PROFILE),node)
CLUSTER_UP       = node-up
CLUSTER_CONTEXT  = $(NODE_CONTEXT)
CLUSTER_SKAFFOLD  = set -a && . $(NODE_DIR)/skaffold.env && set +a && $(NODE_CLIENT_ENV) $(BIN)/skaffold
CLUSTER_FLAGS    = -p node --default-repo $(NODE_REGISTRY)
CLUSTER_KUBECTL  = $(BIN)/kubectl --kubeconfig $(NODE_DIR)/kubeconfig --context $(NODE_CONTEXT)
else
CLUSTER_UP       = kind-up
CLUSTER_CONTEXT  = $(KIND_CONTEXT)
CLUSTER_SKAFFOLD  = $(KIND_SKAFFOLD)
CLUSTER_FLAGS    = $(if $(PROFILE),-p $(PROFILE))
CLUSTER_KUBECTL  = $(KIND_KUBECTL)
endif

# A failed first deploy keeps what it deployed, so its evidence (pods, events,
# the verifier's report) can be read; `make delete` removes it. Skaffold's
# wait for pending deletions (one `kubectl get` of every object before each
# deploy) gets 5 minutes instead of 1: on a loaded laptop or CI machine that
# one call alone was seen to outlast the default and fail the deploy.
DEPLOY_FLAGS := --wait-for-deletions-max=5m
dev: $(CLUSTER_UP) $(BIN)/skaffold $(BIN)/kubectl $(BIN)/kustomize ## Cluster (Kind, or PROFILE=node) + build every image + deploy with Skaffold, verify after every deploy, watch
	$(CLUSTER_SKAFFOLD) dev --kube-context $(CLUSTER_CONTEXT) $(CLUSTER_FLAGS) $(DEPLOY_FLAGS) --keep-running-on-failure $(SKAFFOLD_FLAGS)

run: $(CLUSTER_UP) $(BIN)/skaffold $(BIN)/kubectl $(BIN)/kustomize ## Like dev, but build and deploy once, verify, and return with the verifier's verdict
	$(CLUSTER_SKAFFOLD) run --kube-context $(CLUSTER_CONTEXT) $(CLUSTER_FLAGS) $(DEPLOY_FLAGS) $(SKAFFOLD_FLAGS)

delete: $(BIN)/skaffold $(BIN)/kubectl $(BIN)/kustomize ## Remove what Skaffold deployed (the cluster stays)
	$(CLUSTER_SKAFFOLD) delete --kube-context $(CLUSTER_CONTEXT) $(CLUSTER_FLAGS) $(SKAFFOLD_FLAGS)

kind-up: kind-docker kind-skew $(BIN)/kind ## Create the Kind cluster `dark-tower` (kind/kind-config.yaml) unless it exists
	@if $(BIN)/kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER); then \
		echo "kind cluster $(KIND_CLUSTER) already exists (context $(KIND_CONTEXT))"; \
		$(BIN)/kind export kubeconfig --name $(KIND_CLUSTER) >/dev/null; \
	else \
		$(BIN)/kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 180s; \
	fi

kind-down: kind-docker $(BIN)/kind ## Delete the Kind cluster and everything in it (volumes included)
	$(BIN)/kind delete cluster --name $(KIND_CLUSTER)

kind-running: ## Exit 0 when the Kind cluster `dark-tower` exists (used by make verify)
	@test -x $(BIN)/kind && $(BIN)/kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER)

# One clear line instead of kind's or Skaffold's long error.
kind-docker:
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { \
		echo "make: no Docker engine is reachable (docker info failed): Kind needs one; start Docker and retry, or use 'make up' for local mode" >&2; exit 1; }

# kubectl supports one minor version of skew against the API server (SPEC
# section 9, mistake 15); the server is the node image of kind/kind-config.yaml.
kind-skew: $(BIN)/kubectl
	@node=$$(sed -n 's|.*kindest/node:v1\.\([0-9][0-9]*\)\..*|\1|p' $(KIND_CONFIG) | head -n1); \
	client=$$($(BIN)/kubectl version --client -o json | sed -n 's/.*"minor": *"\([0-9][0-9]*\).*/\1/p' | head -n1); \
	if [ -z "$$node" ] || [ -z "$$client" ]; then echo "kind-skew: cannot read the Kubernetes minor version of $(KIND_CONFIG) or $(BIN)/kubectl" >&2; exit 1; fi; \
	if [ $$((client - node)) -gt 1 ] || [ $$((node - client)) -gt 1 ]; then \
		echo "kind-skew: $(BIN)/kubectl is 1.$$client but the Kind node image is 1.$$node; kubectl supports one minor version of skew: rebuild it (make tools) with the node image's version" >&2; exit 1; fi

# make reports any failed recipe as status 2, so the verifier's own code is
# printed; scripts that need it run kind/verify-cluster.sh directly, as
# Skaffold's hook does.
verify-cluster: $(BIN)/kubectl ## Run the verifier Job in the cluster (PROFILE=node: on the node), stream its report
	@KUBECTL="$(CLUSTER_KUBECTL)" kind/verify-cluster.sh || { code=$$?; \
		echo "make: the verifier exited $$code (1 a check failed, 2 configuration or usage, 3 deadline reached with checks failing)" >&2; exit $$code; }

# Skaffold's `datastores` after-hook: wait for job/db-migrate.
migrate-wait: $(BIN)/kubectl
	@KUBECTL="$(CLUSTER_KUBECTL)" kind/wait-migration.sh

# Skaffold profile `operator` (before-deploy hook): the Prometheus operator
# and its CRDs, so the ServiceMonitors of infra/operator can be applied. The
# bundle is larger than client-side apply's annotation limit: server-side.
PROMETHEUS_OPERATOR_VERSION := v0.93.0
operator-install: $(BIN)/kubectl
	$(KIND_KUBECTL) apply --server-side --force-conflicts -f https://github.com/prometheus-operator/prometheus-operator/releases/download/$(PROMETHEUS_OPERATOR_VERSION)/bundle.yaml
	$(KIND_KUBECTL) wait --for=condition=Established --timeout=120s crd/servicemonitors.monitoring.coreos.com
