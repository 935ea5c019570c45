// Package images assembles the container images the node runs, without a Dockerfile,
// a Docker engine or a public registry, and pushes them to the node's local registry:
// a Go builder and a distroless-like runtime for our own Dockerfiles (their GO_IMAGE and
// RUNTIME_IMAGE build arguments), PostgreSQL, Redis, Prometheus and the two exporters
// from Debian bookworm packages, shaped like the public images our manifests pin, and
// the pause and CoreDNS images the node itself needs.
//
// Ensure is idempotent: every tag derives from what goes into its image (the Debian
// base, the recipe, the files and binaries it holds), so an image the registry already
// has at its tag is skipped without building anything.
package images

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Options says where the images go and where the work is kept.
type Options struct {
	// Registry is host:port of the local registry (plain HTTP), e.g. 127.0.0.1:5001.
	Registry string
	// CacheDir keeps the Debian base rootfs (keyed by suite, day and revision) and the
	// .deb files it installed, e.g. ~/.cache/darktower-tools/images.
	CacheDir string
	// BinDir holds the coredns, pause and prometheus binaries (mk/tools.mk, mk/images.mk).
	BinDir string
	// Log receives progress lines and the output of debootstrap and apt-get; nil
	// discards them.
	Log io.Writer
	// BaseMaxAge is how old a cached base rootfs may be before a new one is made (and
	// with it every Debian-derived image); 0 means 30 days.
	BaseMaxAge time.Duration
}

// Refs are the full references of the images, e.g.
// 127.0.0.1:5001/darktower-base/postgres:15-1a2b3c4d5e6f.
type Refs struct {
	GoBuilder        string `json:"goBuilder"`
	Runtime          string `json:"runtime"`
	Postgres         string `json:"postgres"`
	Redis            string `json:"redis"`
	Prometheus       string `json:"prometheus"`
	RedisExporter    string `json:"redisExporter"`
	PostgresExporter string `json:"postgresExporter"`
	Pause            string `json:"pause"`
	CoreDNS          string `json:"coredns"`
}

// Repository is the path under the registry every image lives in.
const Repository = "darktower-base"

// PrometheusVersion is the release of the Prometheus binary (bin/prometheus,
// tools/prometheus): the one the manifests pin.
const PrometheusVersion = "3.7.3"

// prometheusDefaultConfig is what prom/prometheus ships at
// /etc/prometheus/prometheus.yml, in short: Prometheus scraping itself.
const prometheusDefaultConfig = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: [\"localhost:9090\"]\n"

// GoVersion is the Go toolchain of the Go builder image (from the Go module proxy).
const GoVersion = "1.26.8"

// recipeRevision changes whenever the way images are assembled changes in a way the
// recipes below do not capture; it is part of every tag.
const recipeRevision = "1"

//go:embed files/postgres-entrypoint.sh
var postgresEntrypoint []byte

// epoch is the time stamp of files this package writes and of images without a base.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// debImage is an image made of the Debian base plus packages installed on top.
type debImage struct {
	Name     string   // repository name under Repository
	Label    string   // tag prefix: the upstream version the image stands for
	Packages []string // apt-get install
	Pre      string   // shell, in the chroot, before apt-get install
	Post     string   // shell, in the chroot, after it
	Files    []file   // written into the tree after Post
	Config   v1.Config
	Versions []string // packages whose installed version goes into a label
}

func debImages() []*debImage {
	return []*debImage{
		{
			Name: "go-builder", Label: GoVersion,
			Packages: []string{"git"},
			Config: v1.Config{
				Env: []string{
					"PATH=/go/bin:/usr/local/go/bin:" + defaultPath,
					"GOLANG_VERSION=" + GoVersion,
					"GOTOOLCHAIN=local",
					"GOPATH=/go",
				},
				WorkingDir: "/go",
				Cmd:        []string{"bash"},
			},
			Versions: []string{"git", "ca-certificates"},
		},
		{
			Name: "postgres", Label: "15",
			// uid/gid 70 as in postgres:15-alpine; created first so that
			// postgresql-common keeps them. No "main" cluster: PGDATA is the container's.
			Pre: `groupadd -r -g 70 postgres
useradd -r -u 70 -g 70 -d /var/lib/postgresql -s /bin/bash -c 'PostgreSQL administrator' postgres
mkdir -p /etc/postgresql-common
printf 'create_main_cluster = false\n' > /etc/postgresql-common/createcluster.conf`,
			Packages: []string{"postgresql-15"},
			// JIT (llvm and z3, ~130 MB) goes: without llvmjit.so PostgreSQL runs with
			// JIT unavailable (jit_provider cannot load) and nothing else changes. So
			// does the perl postgresql-common pulled in (~45 MB): PATH finds the
			// server's own binaries before Debian's perl wrappers in /usr/bin.
			Post: `sed -ri "s!^#?(listen_addresses)[[:space:]]*=[[:space:]]*'[^']*'!\1 = '*'!" /usr/share/postgresql/15/postgresql.conf.sample
grep -q "^listen_addresses = '\*'" /usr/share/postgresql/15/postgresql.conf.sample
rm -rf /usr/lib/postgresql/15/lib/llvmjit* /usr/lib/postgresql/15/lib/bitcode /usr/lib/x86_64-linux-gnu/libLLVM-14.so* /usr/lib/llvm-14 /usr/lib/x86_64-linux-gnu/libz3.so*
rm -rf /usr/share/perl/5.36* /usr/lib/x86_64-linux-gnu/perl/5.36* /usr/lib/x86_64-linux-gnu/libperl.so*
rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
find /etc/ssl/certs -xtype l -delete
mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql
chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
chmod 00700 /var/lib/postgresql/data
chmod 03775 /var/run/postgresql`,
			Files: []file{{Path: "/usr/local/bin/docker-entrypoint.sh", Mode: 0o755, Data: postgresEntrypoint}},
			Config: v1.Config{
				Entrypoint: []string{"docker-entrypoint.sh"},
				Cmd:        []string{"postgres"},
				Env: []string{
					"PATH=/usr/lib/postgresql/15/bin:" + defaultPath,
					"PG_MAJOR=15",
					"PGDATA=/var/lib/postgresql/data",
					"LANG=C.UTF-8",
				},
				ExposedPorts: map[string]struct{}{"5432/tcp": {}},
				Volumes:      map[string]struct{}{"/var/lib/postgresql/data": {}},
				StopSignal:   "SIGINT",
			},
			Versions: []string{"postgresql-15"},
		},
		{
			Name: "redis", Label: "7",
			// uid 999 / gid 1000 as in redis:7.4-alpine.
			Pre: `groupadd -r -g 1000 redis
useradd -r -u 999 -g 1000 -d /var/lib/redis -s /usr/sbin/nologin -c 'Redis' redis`,
			Packages: []string{"redis-server"},
			Post: `mkdir -p /data && chown redis:redis /data && chmod 0750 /data
rm -f /etc/redis/redis.conf.dpkg-* `,
			Config: v1.Config{
				Cmd:          []string{"redis-server"},
				Env:          []string{"PATH=" + defaultPath},
				WorkingDir:   "/data",
				User:         "999:1000",
				ExposedPorts: map[string]struct{}{"6379/tcp": {}},
				Volumes:      map[string]struct{}{"/data": {}},
			},
			Versions: []string{"redis-server"},
		},
		{
			Name: "redis-exporter", Label: "1.45",
			Packages: []string{"prometheus-redis-exporter"},
			// oliver006/redis_exporter: /redis_exporter, uid 59000.
			Post: `ln -s /usr/bin/prometheus-redis-exporter /redis_exporter`,
			Config: v1.Config{
				Entrypoint:   []string{"/redis_exporter"},
				Env:          []string{"PATH=" + defaultPath},
				User:         "59000:59000",
				ExposedPorts: map[string]struct{}{"9121/tcp": {}},
			},
			Versions: []string{"prometheus-redis-exporter"},
		},
		{
			Name: "postgres-exporter", Label: "0.11",
			Packages: []string{"prometheus-postgres-exporter"},
			// quay.io/prometheuscommunity/postgres-exporter: /bin/postgres_exporter
			// (here usr/bin, through the /bin link), user nobody.
			Post: `ln -s prometheus-postgres-exporter /usr/bin/postgres_exporter`,
			Config: v1.Config{
				Entrypoint:   []string{"/bin/postgres_exporter"},
				Env:          []string{"PATH=" + defaultPath},
				User:         "65534:65534",
				ExposedPorts: map[string]struct{}{"9187/tcp": {}},
			},
			Versions: []string{"prometheus-postgres-exporter"},
		},
	}
}

// Runtime image files besides the CA bundle (distroless/static's nonroot flavour).
const (
	runtimePasswd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	runtimeGroup  = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	caBundle      = "etc/ssl/certs/ca-certificates.crt"
	hostCABundle  = "/etc/ssl/certs/ca-certificates.crt"
)

var runtimeConfig = v1.Config{
	Env:        []string{"PATH=" + defaultPath, "SSL_CERT_FILE=/" + caBundle},
	User:       "65532:65532",
	WorkingDir: "/home/nonroot",
}

// capNetBindService is a security.capability xattr (VFS_CAP_REVISION_2, effective)
// granting CAP_NET_BIND_SERVICE, as `setcap cap_net_bind_service=+ep` writes it: the
// official CoreDNS image sets it so that a non-root CoreDNS can bind port 53.
var capNetBindService = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// plan is what Ensure works out before building anything.
type plan struct {
	o     Options
	log   io.Writer
	base  base
	fresh bool // base not built yet
	m     mirrors
	debs  map[string]*debImage
	refs  map[string]name.Tag // image name -> ref
	bins  map[string][]byte   // coredns, pause, prometheus
}

var imageNames = []string{"runtime", "go-builder", "postgres", "redis", "prometheus", "redis-exporter", "postgres-exporter", "pause", "coredns"}

func (p *plan) result() Refs {
	s := func(n string) string { return p.refs[n].String() }
	return Refs{
		GoBuilder: s("go-builder"), Runtime: s("runtime"), Postgres: s("postgres"), Redis: s("redis"),
		Prometheus: s("prometheus"), RedisExporter: s("redis-exporter"), PostgresExporter: s("postgres-exporter"),
		Pause: s("pause"), CoreDNS: s("coredns"),
	}
}

// hash12 is the first 12 hex digits of the SHA-256 of the JSON of parts.
func hash12(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			panic(err)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newPlan(o Options, now time.Time) (*plan, error) {
	if o.Registry == "" || o.CacheDir == "" || o.BinDir == "" {
		return nil, errors.New("images: Options.Registry, CacheDir and BinDir are required")
	}
	p := &plan{o: o, log: o.Log, m: hostMirrors(), debs: map[string]*debImage{}, refs: map[string]name.Tag{}, bins: map[string][]byte{}}
	if p.log == nil {
		p.log = io.Discard
	}
	maxAge := o.BaseMaxAge
	if maxAge == 0 {
		maxAge = 30 * 24 * time.Hour
	}
	if b, ok := findBase(o.CacheDir, maxAge, now); ok {
		p.base = b
	} else {
		p.base, p.fresh = newBase(o.CacheDir, now), true
	}
	for _, n := range []string{"coredns", "pause", "prometheus"} {
		b, err := os.ReadFile(filepath.Join(o.BinDir, n))
		if err != nil {
			return nil, fmt.Errorf("images: %v (build it with `make bin/%s`)", err, n)
		}
		p.bins[n] = b
	}
	tag := func(img, t string) error {
		ref, err := name.NewTag(fmt.Sprintf("%s/%s/%s:%s", o.Registry, Repository, img, t), name.Insecure, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		p.refs[img] = ref
		return nil
	}
	// What every Debian-derived tag depends on: the base (which fixes the package
	// versions apt can choose, through its lists), the mirrors, the recipe revision.
	common := []any{recipeRevision, p.base.Key, p.m, aptConf}
	runtimeTag := "static-" + hash12(common, runtimePasswd, runtimeGroup, runtimeConfig)
	if err := tag("runtime", runtimeTag); err != nil {
		return nil, err
	}
	for _, d := range debImages() {
		if d.Name == "go-builder" {
			// `go mod download` in our Dockerfiles reaches the Go module proxy
			// through whatever this host trusts (a corporate or sandbox proxy
			// re-signs TLS with its own CA): the builder trusts the same.
			certs, err := os.ReadFile(hostCABundle)
			if err != nil {
				return nil, fmt.Errorf("images: the Go builder takes the host's CA certificates: %w", err)
			}
			d.Files = append(d.Files, file{Path: "/" + caBundle, Mode: 0o644, Data: certs})
		}
		p.debs[d.Name] = d
		files := make([]file, len(d.Files))
		for i, f := range d.Files {
			f.DataHash = sha(f.Data)
			files[i] = f
		}
		extra := ""
		if d.Name == "go-builder" {
			extra = goToolchainModule()
		}
		if err := tag(d.Name, d.Label+"-"+hash12(common, d, files, extra)); err != nil {
			return nil, err
		}
	}
	if err := tag("pause", "v1-"+hash12(recipeRevision, sha(p.bins["pause"]))); err != nil {
		return nil, err
	}
	if err := tag("prometheus", PrometheusVersion+"-"+hash12(recipeRevision, runtimeTag, sha(p.bins["prometheus"]), prometheusDefaultConfig)); err != nil {
		return nil, err
	}
	if err := tag("coredns", corednsVersion(filepath.Join(o.BinDir, "coredns"))+"-"+hash12(recipeRevision, runtimeTag, sha(p.bins["coredns"]))); err != nil {
		return nil, err
	}
	return p, nil
}

// corednsVersion is the version of the CoreDNS module linked into the binary at path
// (e.g. "1.14.7"), or "coredns" when its build information does not say.
func corednsVersion(path string) string {
	if bi, err := buildinfo.ReadFile(path); err == nil {
		for _, d := range bi.Deps {
			if d.Path == "github.com/coredns/coredns" {
				return strings.TrimPrefix(d.Version, "v")
			}
		}
		if bi.Main.Path == "github.com/coredns/coredns" && bi.Main.Version != "(devel)" {
			return strings.TrimPrefix(bi.Main.Version, "v")
		}
	}
	return "coredns"
}

// Ensure makes sure every image is in the registry and returns their references. It
// skips any image the registry already has at its tag; the rest are built (the Debian
// base first, if no cached one is recent enough) and pushed. Concurrent calls with the
// same CacheDir wait for each other.
func Ensure(ctx context.Context, o Options) (Refs, error) {
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return Refs{}, err
	}
	unlock, err := lock(ctx, filepath.Join(o.CacheDir, ".lock"), logOr(o.Log))
	if err != nil {
		return Refs{}, err
	}
	defer unlock()
	// Scratch left by a run that was killed (nothing else runs while we hold the lock).
	if left, _ := filepath.Glob(filepath.Join(o.CacheDir, "work-*")); len(left) > 0 {
		for _, d := range left {
			if err := removeTree(d); err != nil {
				return Refs{}, fmt.Errorf("images: %w", err)
			}
		}
	}

	start := time.Now()
	refs, err := ensure(ctx, o, time.Now())
	if errors.Is(err, errStaleBase) {
		// The mirror no longer has a package version the cached base's lists name
		// (a security update replaced it): make a new base, and so new tags.
		fmt.Fprintf(logOr(o.Log), "images: %v; making a new base\n", err)
		pruneBases(o.CacheDir, "", logOr(o.Log))
		refs, err = ensure(ctx, o, time.Now())
	}
	if err == nil {
		fmt.Fprintf(logOr(o.Log), "images: all %d images in %s (%s)\n", len(imageNames), o.Registry, time.Since(start).Round(100*time.Millisecond))
	}
	return refs, err
}

func logOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

var errStaleBase = errors.New("the cached Debian base is stale")

func ensure(ctx context.Context, o Options, now time.Time) (Refs, error) {
	p, err := newPlan(o, now)
	if err != nil {
		return Refs{}, err
	}
	var missing []string
	for _, n := range imageNames {
		ok, err := exists(ctx, p.refs[n])
		if err != nil {
			return Refs{}, fmt.Errorf("images: registry %s: %w", o.Registry, err)
		}
		if ok {
			fmt.Fprintf(p.log, "images: %s present\n", p.refs[n])
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return p.result(), nil
	}
	b := &builder{plan: p}
	defer b.cleanup()
	for _, n := range missing {
		t := time.Now()
		img, err := b.build(ctx, n)
		if err != nil {
			return Refs{}, fmt.Errorf("images: %s: %w", n, err)
		}
		if err := remote.Write(p.refs[n], img, remote.WithContext(ctx)); err != nil {
			return Refs{}, fmt.Errorf("images: push %s: %w", p.refs[n], err)
		}
		size, _ := compressedSize(img)
		fmt.Fprintf(p.log, "images: pushed %s (%.1f MB compressed, %s)\n", p.refs[n], float64(size)/1e6, time.Since(t).Round(100*time.Millisecond))
	}
	return p.result(), nil
}

// exists reports whether the registry has ref's manifest.
func exists(ctx context.Context, ref name.Tag) (bool, error) {
	_, err := remote.Head(ref, remote.WithContext(ctx))
	if err == nil {
		return true, nil
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == 404 {
		return false, nil
	}
	return false, err
}

func compressedSize(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// lock takes an exclusive flock on path, waiting (and saying so) while another
// process holds it, until ctx ends.
func lock(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for said := false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !said {
			fmt.Fprintf(log, "images: waiting for another build using %s\n", filepath.Dir(path))
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// builder builds images, sharing the extracted base between them.
type builder struct {
	*plan
	work      string   // scratch directory under CacheDir
	baseRoot  string   // extracted base rootfs
	baseSnap  snapshot // of baseRoot
	baseLayer v1.Layer
	runtime   []v1.Layer
}

func (b *builder) cleanup() {
	if b.work != "" {
		if err := removeTree(b.work); err != nil {
			fmt.Fprintf(b.log, "images: cleanup: %v\n", err)
		}
	}
}

// prepare makes the base (if needed), extracts it and makes the shared base layer.
func (b *builder) prepare(ctx context.Context) error {
	if b.baseRoot != "" {
		return nil
	}
	var err error
	if b.work == "" {
		if b.work, err = os.MkdirTemp(b.o.CacheDir, "work-"); err != nil {
			return err
		}
	}
	if _, err := os.Stat(b.base.Tarball); err != nil {
		if err := os.MkdirAll(b.base.Dir, 0o755); err != nil {
			return err
		}
		if err := buildBase(ctx, b.log, b.base, b.work, b.m); err != nil {
			return err
		}
		pruneBases(b.o.CacheDir, b.base.Key, b.log)
	}
	root := filepath.Join(b.work, "base")
	if err := extract(ctx, b.base.Tarball, root); err != nil {
		return err
	}
	if b.baseSnap, err = takeSnapshot(root); err != nil {
		return err
	}
	layerFile := filepath.Join(b.base.Dir, "base-layer.tar.gz")
	if _, err := os.Stat(layerFile); err != nil {
		tmp := layerFile + ".tmp"
		if _, err := writeLayer(root, tmp, nil); err != nil {
			return fmt.Errorf("base layer: %w", err)
		}
		if err := os.Rename(tmp, layerFile); err != nil {
			return err
		}
	}
	if b.baseLayer, err = tarball.LayerFromFile(layerFile); err != nil {
		return err
	}
	b.baseRoot = root
	return nil
}

// pruneBases removes cached bases other than keep.
func pruneBases(cacheDir, keep string, log io.Writer) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "debian-*"))
	for _, d := range dirs {
		if filepath.Base(d) != keep {
			fmt.Fprintf(log, "images: removing old base %s\n", d)
			_ = removeTree(d)
		}
	}
}

func (b *builder) build(ctx context.Context, n string) (v1.Image, error) {
	switch n {
	case "pause":
		l, err := b.filesLayer("pause", []file{{Path: "/pause", Mode: 0o755, Data: b.bins["pause"]}})
		if err != nil {
			return nil, err
		}
		return b.image([]v1.Layer{l}, v1.Config{
			Entrypoint: []string{"/pause"},
			User:       "65535:65535",
			Env:        []string{"PATH=" + defaultPath},
		}, epoch, map[string]string{"org.opencontainers.image.title": "pause"})
	case "runtime":
		ls, err := b.runtimeLayers(ctx)
		if err != nil {
			return nil, err
		}
		return b.image(ls, runtimeConfig, b.base.Made, map[string]string{
			"org.opencontainers.image.title": "runtime (distroless/static equivalent)",
			"io.darktower.debian-base":       b.base.Key,
		})
	case "prometheus":
		// prom/prometheus's interface: /bin/prometheus, data in /prometheus
		// owned by nobody, a default configuration; the binary is built from
		// the Go module proxy (tools/prometheus), since Debian's lacks
		// Kubernetes service discovery.
		ls, err := b.runtimeLayers(ctx)
		if err != nil {
			return nil, err
		}
		l, err := b.filesLayer("prometheus", []file{
			{Path: "/bin", Mode: 0o755, Dir: true},
			{Path: "/bin/prometheus", Mode: 0o755, Data: b.bins["prometheus"]},
			{Path: "/etc/prometheus", Mode: 0o755, Dir: true},
			{Path: "/etc/prometheus/prometheus.yml", Mode: 0o644, Data: []byte(prometheusDefaultConfig)},
			{Path: "/prometheus", Mode: 0o755, UID: 65534, GID: 65534, Dir: true},
		})
		if err != nil {
			return nil, err
		}
		cfg := runtimeConfig
		cfg.Entrypoint = []string{"/bin/prometheus"}
		cfg.Cmd = []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"}
		cfg.User = "65534:65534"
		cfg.WorkingDir = "/prometheus"
		cfg.ExposedPorts = map[string]struct{}{"9090/tcp": {}}
		return b.image(append(ls, l), cfg, b.base.Made, map[string]string{
			"org.opencontainers.image.title":   "prometheus",
			"org.opencontainers.image.version": PrometheusVersion,
		})
	case "coredns":
		ls, err := b.runtimeLayers(ctx)
		if err != nil {
			return nil, err
		}
		l, err := b.filesLayer("coredns", []file{{Path: "/coredns", Mode: 0o755, Data: b.bins["coredns"],
			Xattr: map[string]string{"security.capability": capNetBindService}}})
		if err != nil {
			return nil, err
		}
		cfg := runtimeConfig
		cfg.Entrypoint = []string{"/coredns"}
		cfg.ExposedPorts = map[string]struct{}{"53/tcp": {}, "53/udp": {}}
		return b.image(append(ls, l), cfg, b.base.Made, map[string]string{
			"org.opencontainers.image.title":   "coredns",
			"org.opencontainers.image.version": corednsVersion(filepath.Join(b.o.BinDir, "coredns")),
		})
	}
	d, ok := b.debs[n]
	if !ok {
		return nil, fmt.Errorf("no recipe for image %q", n)
	}
	return b.buildDeb(ctx, d)
}

func (b *builder) runtimeLayers(ctx context.Context) ([]v1.Layer, error) {
	if b.runtime != nil {
		return b.runtime, nil
	}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(filepath.Join(b.baseRoot, caBundle))
	if err != nil {
		return nil, fmt.Errorf("CA bundle of the base: %w", err)
	}
	dir := func(p string, mode int64, id int) file { return file{Path: p, Mode: mode, UID: id, GID: id, Dir: true} }
	l, err := b.filesLayerAt("runtime", []file{
		dir("/etc", 0o755, 0),
		{Path: "/etc/group", Mode: 0o644, Data: []byte(runtimeGroup)},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(runtimePasswd)},
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		{Path: "/" + caBundle, Mode: 0o644, Data: certs},
		dir("/home", 0o755, 0),
		dir("/home/nonroot", 0o700, 65532),
		dir("/tmp", 0o1777, 0),
	}, b.base.Made)
	if err != nil {
		return nil, err
	}
	b.runtime = []v1.Layer{l}
	return b.runtime, nil
}

func (b *builder) filesLayer(name string, files []file) (v1.Layer, error) {
	return b.filesLayerAt(name, files, epoch)
}

// filesLayerAt writes files as a layer file in the work directory.
func (b *builder) filesLayerAt(name string, files []file, mtime time.Time) (v1.Layer, error) {
	if err := b.workDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(b.work, name+".layer.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	err = writeFilesLayer(f, files, mtime)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromFile(path)
}

func (b *builder) workDir() error {
	if b.work != "" {
		return nil
	}
	var err error
	b.work, err = os.MkdirTemp(b.o.CacheDir, "work-")
	return err
}

// image assembles layers and config into a linux/amd64 image.
func (b *builder) image(layers []v1.Layer, cfg v1.Config, created time.Time, labels map[string]string) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = cfg
	cf.Config.Labels = map[string]string{"org.opencontainers.image.vendor": "darktower (internal/node/images)"}
	for k, v := range labels {
		cf.Config.Labels[k] = v
	}
	cf.History = nil
	for range layers {
		cf.History = append(cf.History, v1.History{Created: cf.Created, CreatedBy: "darktower internal/node/images"})
	}
	return mutate.ConfigFile(img, cf)
}
