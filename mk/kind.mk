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

dev: kind-up $(BIN)/skaffold $(BIN)/kubectl ## Kind cluster + build every image + deploy with Skaffold, verify after every deploy, watch
	$(KIND_SKAFFOLD) dev --kube-context $(KIND_CONTEXT) $(SKAFFOLD_FLAGS)

run: kind-up $(BIN)/skaffold $(BIN)/kubectl ## Like dev, but build and deploy once, verify, and return
	$(KIND_SKAFFOLD) run --kube-context $(KIND_CONTEXT) $(SKAFFOLD_FLAGS)

delete: kind-docker $(BIN)/skaffold $(BIN)/kubectl ## Remove what Skaffold deployed (the cluster stays)
	$(KIND_SKAFFOLD) delete --kube-context $(KIND_CONTEXT) $(SKAFFOLD_FLAGS)

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

verify-cluster: $(BIN)/kubectl ## Run the verifier Job in the cluster, stream its report, exit with its code
	@KUBECTL="$(KIND_KUBECTL)" kind/verify-cluster.sh

# Skaffold's `datastores` after-hook: wait for job/db-migrate.
migrate-wait: $(BIN)/kubectl
	@KUBECTL="$(KIND_KUBECTL)" kind/wait-migration.sh

# Skaffold profile `operator` (before-deploy hook): the Prometheus operator
# and its CRDs, so the ServiceMonitors of infra/operator can be applied. The
# bundle is larger than client-side apply's annotation limit: server-side.
PROMETHEUS_OPERATOR_VERSION := v0.93.0
operator-install: $(BIN)/kubectl
	$(KIND_KUBECTL) apply --server-side --force-conflicts -f https://github.com/prometheus-operator/prometheus-operator/releases/download/$(PROMETHEUS_OPERATOR_VERSION)/bundle.yaml
	$(KIND_KUBECTL) wait --for=condition=Established --timeout=120s crd/servicemonitors.monitoring.coreos.com
