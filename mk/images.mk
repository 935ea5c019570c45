# The node's container images (internal/node/images): assembled from Debian bookworm
# packages, the Go toolchain from the Go module proxy and our own binaries, pushed to
# the node's local registry. Nothing here starts a registry: node-images needs one
# running at NODE_REGISTRY (mk/node.mk starts the node's).

NODE_REGISTRY     ?= 127.0.0.1:5001
NODE_IMAGES_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/darktower-tools/images

PAUSE_SRC := $(wildcard internal/node/images/pause/*.go internal/node/images/pause/cmd/pause/*.go)

# Static: it is the only file of the pause image.
$(BIN)/pause: $(PAUSE_SRC) go.mod
	@mkdir -p $(BIN)
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/pause ./internal/node/images/pause/cmd/pause

.PHONY: node-images
node-images: $(BIN)/pause $(BIN)/coredns $(BIN)/prometheus ## Build the node's images into the registry at NODE_REGISTRY (already running) and print their refs as JSON
	@$(GO) run ./cmd/node-images --registry $(NODE_REGISTRY) --cache $(NODE_IMAGES_CACHE) --bin $(BIN)

# Root and minutes: a real registry, debootstrap, apt-get, containerd and runc.
.PHONY: test-node-images
test-node-images: $(BIN)/pause $(BIN)/coredns $(BIN)/prometheus $(BIN)/registry ## Build every node image and run each one with containerd + runc (root, minutes)
	NODE_IMAGES_CACHE=$(NODE_IMAGES_CACHE) $(GO) test -tags node -count=1 -timeout 45m -v ./internal/node/images/
