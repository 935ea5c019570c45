# The images' Dockerfiles (infra/docker/<binary>/Dockerfile, built by Skaffold).

IMAGE_BINARIES := ac-service global-controller meeting-controller db-migrate verifier

.PHONY: dockerignore
dockerignore: ## Regenerate each image's Dockerfile.dockerignore from its binary's Go imports (after adding an import)
	@for b in $(IMAGE_BINARIES); do infra/docker/dockerignore.sh $$b > infra/docker/$$b/Dockerfile.dockerignore || exit 1; done
