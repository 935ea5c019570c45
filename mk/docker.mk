# The images' Dockerfiles (infra/docker/<binary>/Dockerfile, built by Skaffold),
# each generated from infra/docker/Dockerfile.template with the
# Dockerfile.dockerignore of its binary's Go imports.

IMAGE_BINARIES := ac-service global-controller meeting-controller db-migrate verifier

.PHONY: dockerfiles
dockerfiles: ## Regenerate each image's Dockerfile and Dockerfile.dockerignore (after editing the template or adding an import)
	@for b in $(IMAGE_BINARIES); do \
		sed "s/@BINARY@/$$b/g" infra/docker/Dockerfile.template > infra/docker/$$b/Dockerfile && \
		infra/docker/dockerignore.sh $$b > infra/docker/$$b/Dockerfile.dockerignore || exit 1; done
