package images

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildDeb derives d from the base: apt-get install in a chroot of a copy of the base,
// then one layer of what changed on top of the shared base layer.
func (b *builder) buildDeb(ctx context.Context, d *debImage) (v1.Image, error) {
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	root := filepath.Join(b.work, d.Name)
	if err := removeTree(root); err != nil {
		return nil, err
	}
	defer func() {
		if err := removeTree(root); err != nil {
			fmt.Fprintf(b.log, "images: cleanup: %v\n", err)
		}
	}()
	if err := copyTree(ctx, b.baseRoot, root); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "images: %s: apt-get install %s\n", d.Name, strings.Join(d.Packages, " "))
	script := d.Pre + "\napt-get install -y -q " + strings.Join(d.Packages, " ") + "\n" + d.Post +
		"\ndpkg-query -W -f='${Package}=${Version}\\n' " + strings.Join(d.Versions, " ") + " > /tmp/.versions\n"
	if err := inChroot(ctx, b.log, root, b.base.debs(), script); err != nil {
		var se *scriptError
		if errors.As(err, &se) && (strings.Contains(se.tail, "404  Not Found") || strings.Contains(se.tail, "Unable to fetch some archives")) {
			return nil, fmt.Errorf("%w: %v", errStaleBase, err)
		}
		return nil, err
	}
	versions, err := os.ReadFile(filepath.Join(root, "tmp/.versions"))
	if err != nil {
		return nil, err
	}
	for _, f := range d.Files {
		if err := writeFile(root, f); err != nil {
			return nil, err
		}
	}
	layerFile := filepath.Join(b.work, d.Name+".layer.tar.gz")
	n, err := writeLayer(root, layerFile, b.baseSnap)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "images: %s: %d entries over the base\n", d.Name, n)
	own, err := tarball.LayerFromFile(layerFile)
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{b.baseLayer, own}
	if d.Name == "go-builder" {
		gl, err := b.goLayer(ctx)
		if err != nil {
			return nil, err
		}
		layers = append(layers, gl)
	}
	labels := map[string]string{
		"org.opencontainers.image.title": d.Name,
		"io.darktower.debian-base":       b.base.Key,
		"io.darktower.debian-packages":   strings.Join(strings.Fields(string(versions)), " "),
	}
	if d.Name == "go-builder" {
		labels["io.darktower.go-toolchain"] = goToolchainModule()
	}
	return b.image(layers, d.Config, b.base.Made, labels)
}

// writeFile puts f into the tree at root.
func writeFile(root string, f file) error {
	p := filepath.Join(root, f.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	switch {
	case f.Dir:
		if err := os.MkdirAll(p, os.FileMode(f.Mode)&os.ModePerm); err != nil {
			return err
		}
	case f.Link != "":
		os.Remove(p)
		if err := os.Symlink(f.Link, p); err != nil {
			return err
		}
		return os.Lchown(p, f.UID, f.GID)
	default:
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
	}
	if err := os.Chown(p, f.UID, f.GID); err != nil {
		return err
	}
	return os.Chmod(p, os.FileMode(f.Mode)&os.ModePerm)
}

// goToolchainModule is the Go module that holds the Go toolchain of the Go builder.
func goToolchainModule() string {
	return "golang.org/toolchain@v0.0.1-go" + GoVersion + ".linux-amd64"
}

// goLayer is the Go toolchain at /usr/local/go (from the module proxy, as `go` itself
// fetches toolchains) and an empty GOPATH at /go, as in the official golang image.
func (b *builder) goLayer(ctx context.Context) (v1.Layer, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command is needed to fetch %s: %w", goToolchainModule(), err)
	}
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", goToolchainModule())
	cmd.Dir = b.work // outside any module
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %s: %v: %s%s", goToolchainModule(), err, out, stderr.Bytes())
	}
	var info struct{ Zip, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Zip == "" {
		return nil, fmt.Errorf("go mod download %s: %v %s", goToolchainModule(), err, info.Error)
	}
	fmt.Fprintf(b.log, "images: go-builder: Go %s from %s\n", GoVersion, info.Zip)
	layerFile := filepath.Join(b.work, "go.layer.tar.gz")
	if err := writeGoLayer(info.Zip, layerFile, goToolchainModule()+"/"); err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(layerFile)
}

// writeGoLayer converts the toolchain module zip into a layer: files under
// /usr/local/go with the modes `go` gives a downloaded toolchain (executables in bin/,
// pkg/tool/ and lib's go_*_*_exec) and _go.mod restored to go.mod.
func writeGoLayer(zipPath, out, prefix string) (err error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	mkdir := func(p string, mode int64) error {
		if dirs[p] {
			return nil
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, d := range []string{"go", "go/bin", "go/src"} {
		if err := mkdir(d, 0o1777); err != nil {
			return err
		}
	}
	for _, d := range []string{"usr", "usr/local", "usr/local/go"} {
		if err := mkdir(d, 0o755); err != nil {
			return err
		}
	}
	files := append([]*zip.File(nil), zr.File...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, zf := range files {
		rel, ok := strings.CutPrefix(zf.Name, prefix)
		if !ok {
			return fmt.Errorf("%s: unexpected entry %s", zipPath, zf.Name)
		}
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue
		}
		dir, base := path.Split(rel)
		if base == "_go.mod" {
			base = "go.mod"
		}
		target := "usr/local/go/" + dir + base
		// Parent directories first.
		parts := strings.Split(strings.TrimSuffix("usr/local/go/"+dir, "/"), "/")
		for i := range parts {
			if err := mkdir(strings.Join(parts[:i+1], "/"), 0o755); err != nil {
				return err
			}
		}
		mode := int64(0o644)
		if strings.HasPrefix(rel, "bin/") || strings.HasPrefix(rel, "pkg/tool/") ||
			(strings.HasPrefix(rel, "lib/") && matchExec(base)) {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: target, Typeflag: tar.TypeReg, Mode: mode, Size: int64(zf.UncompressedSize64), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		rc, err := zf.Open()
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func matchExec(base string) bool {
	ok, _ := path.Match("go_?*_?*_exec", base)
	return ok
}
