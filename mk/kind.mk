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

# The local registry (docs/kind.md, "Images: a local registry"): Skaffold
# pushes our images to it from the host (--default-repo $(KIND_REGISTRY)) and
# the Kind node pulls them from it over the `kind` network, through
# containerd's hosts.toml (kind/localregistry, the node's own renderer); no
# `kind load`. Its data is a named volume, so images survive cluster
# re-creation; `make kind-down` keeps it (REGISTRY=1 removes it too).
# 5001 is the node's registry (mk/node.mk), so both can run side by side.
# The image is the CNCF distribution registry, pinned by digest; the tests
# run the same commands with a locally built image (no pulls there).
KIND_REGISTRY_NAME   ?= dark-tower-registry
KIND_REGISTRY_PORT   ?= 5002
KIND_REGISTRY_IMAGE  ?= registry:3.1.1@sha256:1be55279f18a2fe1a74edf2664cac61c1bea305b7b4642dab412e7affdcb3e33
KIND_REGISTRY_VOLUME ?= $(KIND_REGISTRY_NAME)-data
KIND_REGISTRY         = 127.0.0.1:$(KIND_REGISTRY_PORT)
# Docker Hub's images (the manifests pin them by digest) come through a
# pull-through cache: the same registry image in proxy mode, on the kind
# network only, with its own volume, so a re-created cluster pulls them from
# the cache instead of Docker Hub (anonymous pulls are rate limited).
# Content stays for the registry's default proxy TTL (7 days). The node's
# containerd tries the cache first and Docker Hub only when the cache fails.
KIND_MIRROR_NAME     ?= dark-tower-docker-io
KIND_MIRROR_VOLUME   ?= $(KIND_MIRROR_NAME)-data
KIND_MIRROR_UPSTREAM ?= https://registry-1.docker.io
KIND_NETWORK         := kind
# Rendered registry files; certs.d/ goes to KIND_NODE_CERTS in each node,
# the config_path of kind/kind-config.yaml's containerd patch.
KIND_DIR             ?= $(CURDIR)/.kind
KIND_NODE_CERTS      := /etc/containerd/certs.d

# Non-empty when the Kind cluster exists (no Docker, no kind build: empty).
# Lazily evaluated, so merely including this file runs nothing.
KIND_CLUSTER_UP = $(shell test -x $(BIN)/kind && $(BIN)/kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) && echo yes)

.PHONY: dev run delete kind-up kind-down kind-running kind-docker kind-skew verify-cluster migrate-wait operator-install \
	kind-registry kind-registry-config clean-registry test-kind-registry

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
CLUSTER_FLAGS    = $(if $(PROFILE),-p $(PROFILE)) --default-repo $(KIND_REGISTRY)
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

kind-up: kind-docker kind-skew $(BIN)/kind $(BIN)/kubectl kind-registry kind-registry-config ## Create the Kind cluster `dark-tower` (kind/kind-config.yaml) unless it exists, with the local registry
	@if $(BIN)/kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER); then \
		echo "kind cluster $(KIND_CLUSTER) already exists (context $(KIND_CONTEXT))"; \
		$(BIN)/kind export kubeconfig --name $(KIND_CLUSTER) >/dev/null; \
	else \
		$(BIN)/kind create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 180s; \
	fi
	@$(kind_registry_connect)
	@for n in $$($(BIN)/kind get nodes --name $(KIND_CLUSTER)); do docker cp $(KIND_DIR)/certs.d/. $$n:$(KIND_NODE_CERTS)/ || exit 1; done
	@$(BIN)/kubectl --context $(KIND_CONTEXT) apply -f $(KIND_DIR)/local-registry-hosting.yaml

kind-down: kind-docker $(BIN)/kind ## Delete the Kind cluster and everything in it (volumes included); the registries stay unless REGISTRY=1
	$(BIN)/kind delete cluster --name $(KIND_CLUSTER)
	@$(if $(filter 1,$(REGISTRY)),$(kind_registry_remove),echo "registries $(KIND_REGISTRY_NAME) and $(KIND_MIRROR_NAME) kept with their images (make clean-registry, or kind-down REGISTRY=1, removes them)")

# Started once and reused: running, it is left alone; stopped (after a
# reboot without Docker's restart policy, or by hand), started again; gone,
# created on the same volume. The registry is bound to the host's loopback
# only; the cache has no host port.
kind-registry: kind-docker ## Start the local registry for Kind and the Docker Hub cache (or reuse them); the registry at 127.0.0.1:$(KIND_REGISTRY_PORT)
	@$(call kind_registry_start,$(KIND_REGISTRY_NAME),$(KIND_REGISTRY_VOLUME),at $(KIND_REGISTRY),-p 127.0.0.1:$(KIND_REGISTRY_PORT):5000)
	@$(call kind_registry_start,$(KIND_MIRROR_NAME),$(KIND_MIRROR_VOLUME),caching $(KIND_MIRROR_UPSTREAM),-e REGISTRY_PROXY_REMOTEURL=$(KIND_MIRROR_UPSTREAM))
	@$(kind_registry_connect)

# kind_registry_start(name,volume,what,docker run flags): running, reused;
# stopped, started again; gone, created on the same volume.
kind_registry_start = state=$$(docker inspect -f '{{.State.Running}}' $(1) 2>/dev/null); \
	if [ "$$state" = true ]; then echo "registry $(1): running $(3), reused"; \
	elif [ "$$state" = false ]; then docker start $(1) >/dev/null && echo "registry $(1): started again $(3)"; \
	else docker run -d --restart=always --name $(1) $(4) -v $(2):/var/lib/registry $(KIND_REGISTRY_IMAGE) >/dev/null \
		&& echo "registry $(1): started $(3) (images in volume $(2))"; fi

# Both on the `kind` network once it exists (kind create cluster makes it),
# where the nodes reach them by name. The cache asks its upstream for its
# auth endpoints when it starts and exits when it cannot reach it, so it is
# started again once it is on the network (Docker's restart backoff could
# keep it down for a minute).
kind_registry_connect = if docker network inspect $(KIND_NETWORK) >/dev/null 2>&1; then \
	for r in $(KIND_REGISTRY_NAME) $(KIND_MIRROR_NAME); do \
	docker inspect -f '{{range $$k, $$v := .NetworkSettings.Networks}}{{$$k}} {{end}}' $$r | grep -qw $(KIND_NETWORK) || \
	{ docker network connect $(KIND_NETWORK) $$r && echo "registry $$r: on network $(KIND_NETWORK)" && \
	  if [ $$r = $(KIND_MIRROR_NAME) ]; then docker restart $$r >/dev/null; fi; } || exit 1; done; fi

kind_registry_remove = $(call kind_registry_rm,$(KIND_REGISTRY_NAME),$(KIND_REGISTRY_VOLUME)) && \
	$(call kind_registry_rm,$(KIND_MIRROR_NAME),$(KIND_MIRROR_VOLUME))
kind_registry_rm = { ! docker inspect $(1) >/dev/null 2>&1 || docker rm -f $(1) >/dev/null; } && \
	{ ! docker volume inspect $(2) >/dev/null 2>&1 || docker volume rm $(2) >/dev/null; } && \
	echo "registry $(1) and volume $(2) removed"

clean-registry: kind-docker ## Remove the Kind local registry and the Docker Hub cache with their images (volumes included)
	@$(kind_registry_remove)

# containerd's hosts.toml for the registry and for Docker Hub (the cache
# first), and the KEP-1755 ConfigMap.
kind-registry-config:
	@$(GO) run ./kind/localregistry -host $(KIND_REGISTRY) -endpoint http://$(KIND_REGISTRY_NAME):5000 \
		-mirror http://$(KIND_MIRROR_NAME):5000 -upstream $(KIND_MIRROR_UPSTREAM) -dir $(KIND_DIR)

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
# and its CRDs, so the ServiceMonitors of infra/servicemonitors can be applied. The
# bundle is larger than client-side apply's annotation limit: server-side.
PROMETHEUS_OPERATOR_VERSION := v0.93.0
operator-install: $(BIN)/kubectl
	$(KIND_KUBECTL) apply --server-side --force-conflicts -f https://github.com/prometheus-operator/prometheus-operator/releases/download/$(PROMETHEUS_OPERATOR_VERSION)/bundle.yaml
	$(KIND_KUBECTL) wait --for=condition=Established --timeout=120s crd/servicemonitors.monitoring.coreos.com

# The registry steps of kind-up against a real Docker engine (no Kind cluster
# can run in CI): its own Debian dockerd and containerd, the registry image
# built FROM scratch around the static bin/registry. Root, real daemons:
# .ci/run runs it after test-node.
test-kind-registry: node-packages $(BIN)/registry $(BIN)/kind $(BIN)/skaffold ## The Kind local registry for real: make kind-registry, Skaffold push, containerd pull through hosts.toml (root)
	BIN_DIR=$(BIN) $(GO) test -tags node -count=1 -timeout 20m -v ./kind/localregistry/
