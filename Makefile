# Dark Tower dev stack. `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
GOTESTFLAGS ?= -p 2 -timeout 25m

# Pinned tools, built from the Go module proxy into bin/.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
BUF_VERSION                := v1.61.0
STATICCHECK_VERSION        := v0.8.2

BINARIES := ac-service global-controller meeting-controller db-migrate verifier devstack
STATE_DIR ?= $(CURDIR)/.state
PORT_BASE ?= 17000
DEVSTACK  = STATE_DIR=$(STATE_DIR) PORT_BASE=$(PORT_BASE) BIN_DIR=$(BIN) $(BIN)/devstack

# Kind/Skaffold targets, pinned tool builds and manifest validation live in mk/.
-include mk/tools.mk $(filter-out mk/tools.mk,$(wildcard mk/*.mk))

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST) | sort

.PHONY: up
up: build ## Start the whole stack as local processes and verify it (PORT_BASE=... moves every port)
	$(DEVSTACK) up

.PHONY: verify
verify: build ## Verify the stack: the verifier Job on the node or Kind cluster when one is up, local mode otherwise
	@if [ -x $(BIN)/node ] && $(NODE_ENV) $(BIN)/node status >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory verify-cluster PROFILE=node; \
	elif [ -x $(BIN)/kind ] && $(BIN)/kind get clusters 2>/dev/null | grep -qx dark-tower; then \
		$(MAKE) --no-print-directory verify-cluster; else $(DEVSTACK) verify; fi

.PHONY: down
down: ## Stop every local process (data stays)
	@if [ -x $(BIN)/devstack ]; then $(DEVSTACK) down; else echo "nothing built, nothing running"; fi

.PHONY: status
status: build ## Show which local processes run
	$(DEVSTACK) status

.PHONY: logs
logs: build ## Follow the merged logs of every local process
	$(DEVSTACK) logs

.PHONY: clean
clean: ## Stop the local stack and delete its state (databases, logs, secrets)
	@if [ -x $(BIN)/devstack ]; then $(DEVSTACK) clean; else rm -rf $(STATE_DIR); fi

.PHONY: build
build: ## Build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: test
test: lint proto-check validate ## Run vet, staticcheck, the Kubernetes-side validation and every test (real Postgres, Redis, Prometheus and our services)
	$(GO) test $(GOTESTFLAGS) ./...

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet and staticcheck (the root-only node tests included)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags node ./...
	$(BIN)/staticcheck -tags node ./...

.PHONY: bench
bench: ## Run the benchmarks recorded in docs/benchmarks.md
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./internal/auth/
	$(GO) test -run '^$$' -bench Heartbeat -benchtime 5s -count 3 ./internal/gc/
	$(GO) test -run '^$$' -bench TimeToVerdict -benchtime 1x ./verifier/e2e/stack/
	$(GO) test -run '^$$' -bench BenchmarkUp -benchtime 1x -count 5 ./internal/localstack/
	$(GO) test -run '^$$' -bench 'BenchmarkDown|BenchmarkVerifyNothingRunning' -benchtime 1x -count 3 ./internal/localstack/

.PHONY: proto
proto: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Lint the protos and regenerate gen/ with pinned tools
	$(BIN)/buf lint
	PATH=$(BIN):$$PATH $(BIN)/buf generate

.PHONY: proto-check
proto-check: proto ## Fail if the committed generated code differs from a fresh generation
	git diff --exit-code -- gen/

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
