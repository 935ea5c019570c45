# The images' one Dockerfile (infra/docker/Dockerfile, BINARY a build
# argument) and, per image, the path Skaffold builds it through
# (infra/docker/<binary>.Dockerfile, a symlink to it) beside the
# .dockerignore of its binary's Go imports.

IMAGE_BINARIES := ac-service global-controller meeting-controller db-migrate verifier

.PHONY: dockerfiles
dockerfiles: ## Regenerate each image's <binary>.Dockerfile link and .dockerignore (after adding an import)
	@for b in $(IMAGE_BINARIES); do \
		ln -sfn Dockerfile infra/docker/$$b.Dockerfile && \
		infra/docker/dockerignore.sh $$b > infra/docker/$$b.Dockerfile.dockerignore || exit 1; done
