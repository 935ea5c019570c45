# Validation of the Kubernetes side with the real tools (tools/validate, its own Go module so
# k8s.io/*, cyclonus, BuildKit and Kind stay out of the services' dependencies). The tool
# targets come first, so a missing tool is built, never skipped.

ETCD := /usr/bin/etcd

# Debian's etcd-server backs the throwaway kube-apiserver of the apply tests.
$(ETCD):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server

.PHONY: validate
validate: $(BIN)/kind $(BIN)/skaffold $(BIN)/kubectl $(BIN)/kube-apiserver $(BIN)/staticcheck $(ETCD) ## Validate manifests, Kind/Skaffold config and Dockerfiles with the pinned tools and a real kube-apiserver
	cd tools/validate && $(GO) vet ./... && $(BIN)/staticcheck ./... && $(GO) test -count=1 -timeout 10m ./...
