# The node: a single-node Kubernetes whose components run as host processes
# (internal/node, docs/kind.md "The node"), for CI and Linux hosts without
# Docker Desktop or Docker Hub. Root only. `make run PROFILE=node` and
# `make dev PROFILE=node` deploy the stack to it with Skaffold.

NODE_DIR ?= $(CURDIR)/.node
NODE_CONTEXT := dark-tower-node
NODE_ENV  = NODE_DIR=$(NODE_DIR) BIN_DIR=$(BIN) TOOLS_CACHE=$(TOOLS_CACHE)
# What Skaffold and kubectl need to reach the node and its Docker engine
# (with Debian's docker client first on PATH: see internal/node/up.go).
NODE_CLIENT_ENV = KUBECONFIG=$(NODE_DIR)/kubeconfig DOCKER_HOST=unix://$(NODE_DIR)/docker/docker.sock PATH="$(NODE_DIR)/bin:$(BIN):$$PATH"

# Debian's packages the node runs: etcd, containerd + runc, the CNI plugins,
# the Docker engine for Skaffold's builds, ipset for kube-router, debootstrap
# for the base images.
NODE_PACKAGES := etcd-server containerd runc containernetworking-plugins docker.io iptables ipset debootstrap
NODE_TOOLS    := $(KUBERNETES_BINS) $(BIN)/registry $(BIN)/kube-router $(BIN)/coredns $(BIN)/pause $(BIN)/prometheus $(BIN)/skaffold $(BIN)/kustomize

.PHONY: node-up node-down node-status node-packages test-node

node-packages:
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

$(BIN)/node: $(shell find internal/node internal/procs cmd/node -name '*.go' -o -name '*.yaml' -o -name '*.sh' 2>/dev/null) go.mod go.sum
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/node ./cmd/node

node-up: node-packages $(NODE_TOOLS) $(BIN)/node ## Start the single-node Kubernetes of host processes (root; docs/kind.md "The node")
	@$(NODE_ENV) $(BIN)/node up

node-down: ## Stop the node and remove what it changed on the host (state stays in .node/)
	@if [ -x $(BIN)/node ]; then $(NODE_ENV) $(BIN)/node down; else echo "node: nothing built, nothing running"; fi

node-status: $(BIN)/node ## Show the node's processes and whether it is Ready
	@$(NODE_ENV) $(BIN)/node status

# Root, minutes, real daemons: not part of `make test`. .ci/run runs it after.
test-node: node-packages $(NODE_TOOLS) $(BIN)/node $(BIN)/kubectl ## The Skaffold path for real on the node: deploy, verify, faults, clean-up (root)
	$(NODE_ENV) $(GO) test -tags node -p 1 -count=1 -timeout 90m -v ./internal/node/...

.PHONY: bench-node
bench-node: node-packages $(NODE_TOOLS) $(BIN)/node $(BIN)/kubectl ## The dev loop's edit-to-green on the node, beside its floor (root; docs/benchmarks.md)
	$(NODE_ENV) $(GO) test -tags node -run '^$$' -bench DevLoop -benchtime 5x -count=1 -timeout 90m -v ./internal/node/
