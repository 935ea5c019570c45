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

.PHONY: tools
tools: $(BIN)/kind $(BIN)/skaffold $(BIN)/kubectl $(BIN)/kube-apiserver ## Build the pinned kind, skaffold, kubectl and kube-apiserver into bin/ (cached by version)

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

$(BIN)/kubectl: $(call tool_force,kubectl,$(KUBERNETES_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,kubectl,$(KUBERNETES_VERSION),cd tools/kubectl && $(GO) build -trimpath -ldflags "$(k8s_ldflags)" \
		-o $(BIN)/kubectl k8s.io/kubernetes/cmd/kubectl)
	@echo $(KUBERNETES_VERSION) > $(BIN)/.kubectl.version

$(BIN)/kube-apiserver: $(call tool_force,kube-apiserver,$(KUBERNETES_VERSION))
	@mkdir -p $(BIN)
	@$(call cached,kube-apiserver,$(KUBERNETES_VERSION),cd tools/kube-apiserver && $(GO) build -trimpath -ldflags "$(k8s_ldflags)" \
		-o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver)
	@echo $(KUBERNETES_VERSION) > $(BIN)/.kube-apiserver.version
