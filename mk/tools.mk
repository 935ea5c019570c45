# Pinned Kubernetes-side tools, built from the Go module proxy into bin/.
#
# Skaffold and kube-apiserver take minutes to build, so each tool is rebuilt only when bin/<tool>
# is missing or bin/.<tool>.version (written after a successful build) differs from the pin
# below. Skaffold, kubectl and kube-apiserver come from the small modules in tools/<tool>/, whose
# go.mod/go.sum fix every dependency; kind installs with `go install`.

KIND_VERSION       := v0.33.0
SKAFFOLD_VERSION   := v2.24.0
# The Kubernetes version of the Kind node image (kind/kind-config.yaml).
KUBERNETES_VERSION := v1.37.0

TOOLS_BUILD_DATE := 2026-01-01T00:00:00Z

# Built tools are also kept outside the checkout, keyed by version, so a fresh
# clone on the same machine (CI) copies them instead of spending minutes.
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/darktower-tools

# cached(tool,version,build commands): copy bin/<tool> from the cache, or
# build it and store it there.
cached = if [ -x $(TOOLS_CACHE)/$(1)-$(2) ]; then cp $(TOOLS_CACHE)/$(1)-$(2) $(BIN)/$(1) && echo "$(1) $(2): from $(TOOLS_CACHE)"; \
	else $(3) && mkdir -p $(TOOLS_CACHE) && cp $(BIN)/$(1) $(TOOLS_CACHE)/$(1)-$(2).tmp && mv $(TOOLS_CACHE)/$(1)-$(2).tmp $(TOOLS_CACHE)/$(1)-$(2); fi

# tool_stale(tool,version): non-empty when bin/<tool> must be (re)built.
tool_stale = $(if $(and $(wildcard $(BIN)/$(1)),$(filter $(2),$(shell cat $(BIN)/.$(1).version 2>/dev/null))),,stale)
tool_force = $(if $(call tool_stale,$(1),$(2)),FORCE-TOOL)

# -X flags so `version` reports the pinned release (kubectl refuses to talk to v0.0.0).
k8s_ldflags = -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBERNETES_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBERNETES_VERSION)))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(patsubst v%,%,$(KUBERNETES_VERSION)))) \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/component-base/version.buildDate=$(TOOLS_BUILD_DATE) \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBERNETES_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBERNETES_VERSION)))) \
	-X k8s.io/client-go/pkg/version.gitMinor=$(word 2,$(subst ., ,$(patsubst v%,%,$(KUBERNETES_VERSION)))) \
	-X k8s.io/client-go/pkg/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.buildDate=$(TOOLS_BUILD_DATE)

.PHONY: FORCE-TOOL
FORCE-TOOL:

# Defined before the rules that name them: make expands a rule's
# prerequisites as it reads the rule.
KUBERNETES_CMDS := kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy
KUBERNETES_BINS := $(addprefix $(BIN)/,$(KUBERNETES_CMDS))

.PHONY: tools
tools: $(BIN)/kind $(BIN)/skaffold $(KUBERNETES_BINS) ## Build the pinned kind, skaffold and Kubernetes commands into bin/ (cached by version)

$(BIN)/kind: $(call tool_force,kind,$(KIND_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,kind,$(KIND_VERSION),GOBIN=$(BIN) $(GO) install sigs.k8s.io/kind@$(KIND_VERSION))
	@echo $(KIND_VERSION) > $(BIN)/.kind.version

$(BIN)/skaffold: $(call tool_force,skaffold,$(SKAFFOLD_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,skaffold,$(SKAFFOLD_VERSION),cd tools/skaffold && $(GO) build -trimpath -ldflags "-s -w \
		-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$(SKAFFOLD_VERSION) \
		-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.buildDate=$(TOOLS_BUILD_DATE)" \
		-o $(BIN)/skaffold github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold)
	@echo $(SKAFFOLD_VERSION) > $(BIN)/.skaffold.version

# The Kubernetes commands come from one module (tools/kubernetes) in one `go build`, which
# shares the compilation of k8s.io/* between them; they are cached as one set.
kubernetes_stale = $(if $(and $(filter $(KUBERNETES_VERSION),$(shell cat $(BIN)/.kubernetes.version 2>/dev/null)),$(filter $(words $(KUBERNETES_CMDS)),$(words $(wildcard $(KUBERNETES_BINS))))),,FORCE-TOOL)
KUBERNETES_CACHE = $(TOOLS_CACHE)/kubernetes-$(KUBERNETES_VERSION)

$(KUBERNETES_BINS) &: $(kubernetes_stale)
	@mkdir -p $(BIN)
	@if [ -f $(KUBERNETES_CACHE)/.complete ]; then cp $(addprefix $(KUBERNETES_CACHE)/,$(KUBERNETES_CMDS)) $(BIN)/ && echo "kubernetes $(KUBERNETES_VERSION): from $(KUBERNETES_CACHE)"; \
	else cd tools/kubernetes && $(GO) build -trimpath -ldflags "$(k8s_ldflags)" -o $(BIN)/ $(addprefix k8s.io/kubernetes/cmd/,$(KUBERNETES_CMDS)) \
		&& rm -rf $(KUBERNETES_CACHE).tmp && mkdir -p $(KUBERNETES_CACHE).tmp && cp $(KUBERNETES_BINS) $(KUBERNETES_CACHE).tmp/ \
		&& touch $(KUBERNETES_CACHE).tmp/.complete && rm -rf $(KUBERNETES_CACHE) && mv $(KUBERNETES_CACHE).tmp $(KUBERNETES_CACHE); fi
	@echo $(KUBERNETES_VERSION) > $(BIN)/.kubernetes.version

# The node's own tools (mk/node.mk), each from its module under tools/, cached by version.
REGISTRY_VERSION    := v3.1.2
COREDNS_VERSION     := v1.14.7
KUBE_ROUTER_VERSION := v2.1.0
# Prometheus v3.7.3 (the manifests' release) is module version v0.307.3.
PROMETHEUS_VERSION  := v0.307.3

# Static: the node runs it on the host, and the Kind registry test
# (kind/localregistry) in an image with nothing else in it. The cache key says
# so, since a cgo build of the same version was cached before.
REGISTRY_BUILD := $(REGISTRY_VERSION)-static
$(BIN)/registry: $(call tool_force,registry,$(REGISTRY_BUILD))
	@mkdir -p $(BIN)
	@$(call cached,registry,$(REGISTRY_BUILD),cd tools/registry && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/registry github.com/distribution/distribution/v3/cmd/registry)
	@echo $(REGISTRY_BUILD) > $(BIN)/.registry.version

# Static: it runs in a container image with nothing else in it.
$(BIN)/coredns: $(call tool_force,coredns,$(COREDNS_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,coredns,$(COREDNS_VERSION),cd tools/coredns && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/coredns .)
	@echo $(COREDNS_VERSION) > $(BIN)/.coredns.version

$(BIN)/kube-router: $(call tool_force,kube-router,$(KUBE_ROUTER_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,kube-router,$(KUBE_ROUTER_VERSION),cd tools/kube-router && $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
	@echo $(KUBE_ROUTER_VERSION) > $(BIN)/.kube-router.version

# Skaffold renders with a `kustomize` on PATH when there is one, and falls back to
# `kubectl kustomize` otherwise: pin it, at the version kubectl v1.37 embeds, so both
# render alike and no older kustomize of the machine's is picked up.
KUSTOMIZE_VERSION := v5.8.1

$(BIN)/kustomize: $(call tool_force,kustomize,$(KUSTOMIZE_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,kustomize,$(KUSTOMIZE_VERSION),GOBIN=$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION))
	@echo $(KUSTOMIZE_VERSION) > $(BIN)/.kustomize.version

# Static, for the node's Prometheus image: Debian's Prometheus lacks Kubernetes service discovery.
$(BIN)/prometheus: $(call tool_force,prometheus,$(PROMETHEUS_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,prometheus,$(PROMETHEUS_VERSION),cd tools/prometheus && CGO_ENABLED=0 $(GO) build -trimpath \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=3.7.3" -o $(BIN)/prometheus github.com/prometheus/prometheus/cmd/prometheus)
	@echo $(PROMETHEUS_VERSION) > $(BIN)/.prometheus.version
