package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/darktower/devstack/internal/node/images"
)

type imageRefs = images.Refs

// ensureImages pushes the locally assembled base images (pause, CoreDNS, the
// datastores, Prometheus, the exporters, the Go builder and runtime bases of
// our Dockerfiles) to the local registry, once: they are kept in its storage
// in the tools cache.
func (n *Node) ensureImages(ctx context.Context) (imageRefs, error) {
	n.logf("base images: assembling what the registry lacks (minutes the first time)")
	refs, err := images.Ensure(ctx, images.Options{
		Registry: Registry,
		CacheDir: filepath.Join(n.Cache, "images"),
		BinDir:   n.Bin,
		Log:      n.Out,
	})
	if err != nil {
		return refs, err
	}
	// The manifests name the third-party images by the upstream version
	// they stand for (infra/overlays/node/images), which a content-derived
	// tag cannot be written down as: tag each with its version too.
	for _, ref := range []string{refs.Postgres, refs.Redis, refs.Prometheus, refs.RedisExporter, refs.PostgresExporter} {
		if err := tagVersion(ctx, ref); err != nil {
			return refs, err
		}
	}
	return refs, nil
}

// tagVersion tags repo:<version>-<content hash> as repo:<version> too.
func tagVersion(ctx context.Context, ref string) error {
	r, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return err
	}
	version, _, ok := strings.Cut(r.TagStr(), "-")
	if !ok {
		return fmt.Errorf("node: image %s: tag %q is not <version>-<hash>", ref, r.TagStr())
	}
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("node: image %s: %w", ref, err)
	}
	if err := remote.Tag(r.Context().Tag(version), desc, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("node: tagging %s as %s: %w", ref, version, err)
	}
	return nil
}
