//go:build node

// These tests need root, debootstrap, containerd, ctr and runc (Debian's), and bin/registry,
// bin/coredns and bin/pause (`make test-node-images` builds them); they take minutes.
// Nothing is mocked: a real registry receives the images, and each image runs in a
// real containerd + runc started here. A missing prerequisite fails the test.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/manifest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/jackc/pgx/v5"

	"github.com/darktower/devstack/internal/testsupport"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// stopProcess sends SIGTERM, then SIGKILL after grace, and waits.
func stopProcess(cmd *exec.Cmd, done <-chan error, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// registry is a real bin/registry on a free loopback port with a temporary store.
type registry struct {
	addr string
	log  *syncBuffer
}

func startRegistry(t *testing.T, bin, dir string) *registry {
	t.Helper()
	port := freePort(t)
	cfg := filepath.Join(dir, "registry.yaml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n", filepath.Join(dir, "registry-data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &registry{addr: fmt.Sprintf("127.0.0.1:%d", port), log: &syncBuffer{}}
	cmd := exec.Command(filepath.Join(bin, "registry"), "serve", cfg)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { stopProcess(cmd, done, 5*time.Second) })
	testsupport.Eventually(t, 20*time.Second, "registry /v2/", func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("registry exited: %v\n%s", err, r.log)
		default:
		}
		resp, err := http.Get("http://" + r.addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return r
}

// writes counts the PUT, POST and PATCH requests in the registry's access log.
func (r *registry) writes() int {
	return len(regexp.MustCompile(`"(PUT|POST|PATCH) /v2/`).FindAllString(r.log.String(), -1))
}

// containerd is Debian's containerd with its own root, state and socket.
type containerd struct {
	t    *testing.T
	sock string
	ns   string
	dir  string
}

func startContainerd(t *testing.T, dir string) *containerd {
	t.Helper()
	for _, p := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed (apt-get install containerd runc): %v", p, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := &containerd{t: t, sock: filepath.Join(dir, "c.sock"), ns: "darktower-images-test", dir: dir}
	// restrict_oom_score_adj: these machines lack CAP_SYS_RESOURCE (TOOLING.md).
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, filepath.Join(dir, "opt"))
	cfg := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		stopProcess(cmd, done, 10*time.Second)
		// Shims outlive containerd while they hold a task: stop ours by pid.
		for _, pid := range shimPids(c.sock) {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil {
				t.Logf("containerd log (tail):\n%s", tail(string(b), 3000))
			}
		}
	})
	testsupport.Eventually(t, 20*time.Second, "containerd socket", func() error {
		_, err := c.ctrErr(5*time.Second, "version")
		return err
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// shimPids finds the containerd-shim processes serving sock.
func shimPids(sock string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := string(b)
		if strings.Contains(cl, "containerd-shim") && strings.Contains(cl, sock) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *containerd) ctrErr(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.sock, "--namespace", c.ns}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *containerd) ctr(timeout time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.ctrErr(timeout, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *containerd) pull(ref string) {
	c.t.Helper()
	c.ctr(5*time.Minute, "images", "pull", "--plain-http", "--platform", "linux/amd64", ref)
}

// runOpts are the ctr run options of one container.
type runOpts struct {
	readOnly bool
	netHost  bool
	env      []string
	mounts   []string // type=...,src=...,dst=...,options=...
	cwd      string
}

// flags are ctr run's flags for o. The environment goes through a file, so that no
// value (passwords included) is an argument of ctr.
func (c *containerd) flags(o runOpts) []string {
	c.t.Helper()
	var f []string
	if len(o.env) > 0 {
		env := filepath.Join(c.dir, "env-"+randomHex(c.t)[:8])
		if err := os.WriteFile(env, []byte(strings.Join(o.env, "\n")+"\n"), 0o600); err != nil {
			c.t.Fatal(err)
		}
		f = append(f, "--env-file", env)
	}
	if o.readOnly {
		f = append(f, "--read-only")
	}
	if o.netHost {
		f = append(f, "--net-host")
	}
	for _, m := range o.mounts {
		f = append(f, "--mount", m)
	}
	if o.cwd != "" {
		f = append(f, "--cwd", o.cwd)
	}
	return f
}

func bind(src, dst string, ro bool) string {
	opt := "rbind:rw"
	if ro {
		opt = "rbind:ro"
	}
	return fmt.Sprintf("type=bind,src=%s,dst=%s,options=%s", src, dst, opt)
}

// run runs a container to completion and returns its output and exit code. With args,
// ctr (1.6) runs args alone, not the image's entrypoint followed by args as Kubernetes
// and Docker do, so callers name the entrypoint themselves.
func (c *containerd) run(timeout time.Duration, o runOpts, ref, id string, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"--address", c.sock, "--namespace", c.ns, "run", "--rm"}, c.flags(o)...)
	full = append(append(full, ref, id), args...)
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("ctr run %s: %v", id, err)
	}
	if ctx.Err() != nil {
		c.t.Fatalf("ctr run %s: timed out after %s: %s", id, timeout, out)
	}
	return string(out), code
}

// task is a container running in the background (ctr run in the foreground, held by
// this process, so that its exit code is the container's).
type task struct {
	c    *containerd
	id   string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
	code int
}

func (c *containerd) start(o runOpts, ref, id string, args ...string) *task {
	c.t.Helper()
	full := append([]string{"--address", c.sock, "--namespace", c.ns, "run", "--rm"}, c.flags(o)...)
	full = append(append(full, ref, id), args...)
	tk := &task{c: c, id: id, cmd: exec.Command("ctr", full...), out: &syncBuffer{}, done: make(chan error, 1), code: -1}
	tk.cmd.Stdout, tk.cmd.Stderr = tk.out, tk.out
	if err := tk.cmd.Start(); err != nil {
		c.t.Fatalf("ctr run %s: %v", id, err)
	}
	go func() { tk.done <- tk.cmd.Wait() }()
	c.t.Cleanup(func() { tk.kill() })
	testsupport.Eventually(c.t, 60*time.Second, id+" running", func() error {
		select {
		case err := <-tk.done:
			tk.done <- err
			return fmt.Errorf("exited early: %v: %s", err, tk.out)
		default:
		}
		out, err := c.ctrErr(10*time.Second, "tasks", "ls")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
				return nil
			}
		}
		return fmt.Errorf("not running yet: %s", out)
	})
	return tk
}

// exec runs a process in the task's container (with its user and environment).
func (tk *task) exec(timeout time.Duration, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"--address", tk.c.sock, "--namespace", tk.c.ns, "tasks", "exec", "--exec-id", "x" + randomHex(tk.c.t)[:8], tk.id}, args...)
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		return fmt.Sprintf("%v: %s", err, out), -1
	}
	return string(out), 0
}

// signal sends sig to the task and waits up to d for it to exit; it returns the exit code.
func (tk *task) signal(sig string, d time.Duration) int {
	tk.c.t.Helper()
	tk.c.ctr(10*time.Second, "tasks", "kill", "--signal", sig, tk.id)
	select {
	case err := <-tk.done:
		tk.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			tk.code = ee.ExitCode()
		} else if err == nil {
			tk.code = 0
		}
		return tk.code
	case <-time.After(d):
		tk.c.t.Fatalf("%s still running %s after %s; output:\n%s", tk.id, d, sig, tk.out)
	}
	return -1
}

// kill stops the task if it still runs and removes it.
func (tk *task) kill() {
	select {
	case err := <-tk.done:
		tk.done <- err
		return
	default:
	}
	_, _ = tk.c.ctrErr(10*time.Second, "tasks", "kill", "--signal", "SIGKILL", tk.id)
	select {
	case <-tk.done:
	case <-time.After(10 * time.Second):
		_ = tk.cmd.Process.Kill()
	}
	_, _ = tk.c.ctrErr(10*time.Second, "tasks", "delete", "--force", tk.id)
	_, _ = tk.c.ctrErr(10*time.Second, "containers", "delete", tk.id)
}

// withUser pushes a copy of ref whose default user is user (what a pod's runAsUser
// does; ctr run has no --user) and returns the copy's reference.
func withUser(t *testing.T, ref, user string) string {
	t.Helper()
	src, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.User = user
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag(src.Context().RegistryStr()+"/test/"+src.Context().RepositoryStr()[len(Repository)+1:]+"-as-"+strings.ReplaceAll(user, ":", "-")+":"+src.Identifier(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	return dst.String()
}

// imageFiles lists the paths in an image's layers (whiteouts included).
func imageFiles(t *testing.T, ref string) (map[string]*tar.Header, *v1.ConfigFile) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimSuffix(h.Name, "/")] = h
		}
		rc.Close()
	}
	return files, cf
}

func TestEnsureAndRunImages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (debootstrap, chroot, containerd)")
	}
	root := repoRoot(t)
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"registry", "coredns", "pause"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("bin/%s missing (make test-node-images builds it): %v", b, err)
		}
	}
	work, err := os.MkdirTemp("", "node-images-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Anything still mounted under work (snapshots, shim rootfs) goes first;
		// removeTree refuses to delete through a mount.
		if err := removeTree(work); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	reg := startRegistry(t, bin, work)
	// The cache the node uses (mk/node.mk passes TOOLS_CACHE), so that the Debian
	// base is made once per machine; the registry is new, so every image is built.
	cache := os.Getenv("NODE_IMAGES_CACHE")
	if tc := os.Getenv("TOOLS_CACHE"); cache == "" && tc != "" {
		cache = filepath.Join(tc, "images")
	}
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(d, "darktower-tools", "images")
	}
	ensureLog := &syncBuffer{}
	opts := Options{Registry: reg.addr, CacheDir: cache, BinDir: bin, Log: io.MultiWriter(ensureLog, testWriter{t})}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	refs, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("Ensure (cold): %v", err)
	}
	cold := time.Since(start)
	writesAfterFirst := reg.writes()
	if writesAfterFirst == 0 {
		t.Fatal("the first Ensure pushed nothing to an empty registry")
	}

	// The second run finds every image at its tag and pushes nothing.
	opts.Log = io.MultiWriter(ensureLog, testWriter{t})
	start = time.Now()
	refs2, err := Ensure(ctx, opts)
	if err != nil {
		t.Fatalf("Ensure (warm): %v", err)
	}
	warm := time.Since(start)
	if refs2 != refs {
		t.Fatalf("second Ensure returned other refs:\n%+v\n%+v", refs, refs2)
	}
	if w := reg.writes(); w != writesAfterFirst {
		t.Fatalf("second Ensure wrote to the registry: %d write requests after the first run, %d after the second", writesAfterFirst, w)
	}
	t.Logf("Ensure: cold %s, warm %s; refs:", cold.Round(time.Second), warm.Round(time.Millisecond))
	js, _ := json.MarshalIndent(refs, "", "  ")
	t.Logf("%s", js)
	all := map[string]string{}
	if err := json.Unmarshal(js, &all); err != nil {
		t.Fatal(err)
	}
	for k, ref := range all {
		if !strings.HasPrefix(ref, reg.addr+"/"+Repository+"/") || strings.HasSuffix(ref, ":latest") {
			t.Errorf("%s: ref %q is not %s/%s/NAME:TAG with a content tag", k, ref, reg.addr, Repository)
		}
	}
	logImageSizes(t, all)

	c := startContainerd(t, filepath.Join(work, "ctd"))
	for _, ref := range all {
		c.pull(ref)
	}

	t.Run("runtime", func(t *testing.T) { testRuntime(t, c, work, refs.Runtime) })
	t.Run("coredns", func(t *testing.T) { testCoreDNS(t, c, work, refs.CoreDNS) })
	t.Run("pause", func(t *testing.T) { testPause(t, c, refs.Pause) })
	t.Run("go-builder", func(t *testing.T) { testGoBuilder(t, c, work, refs.GoBuilder) })
	t.Run("postgres+exporter", func(t *testing.T) { testPostgres(t, c, work, refs.Postgres, refs.PostgresExporter) })
	t.Run("redis+exporter", func(t *testing.T) { testRedis(t, c, work, root, refs.Redis, refs.RedisExporter) })
	t.Run("prometheus", func(t *testing.T) { testPrometheus(t, c, work, root, refs.Prometheus) })
}

// testWriter sends Ensure's progress to the test log, line by line.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if strings.HasPrefix(l, "images:") {
			w.t.Log(l)
		}
	}
	return len(p), nil
}

func logImageSizes(t *testing.T, refs map[string]string) {
	keys := make([]string, 0, len(refs))
	for k := range refs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, err := name.ParseReference(refs[k], name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r)
		if err != nil {
			t.Fatal(err)
		}
		n, err := compressedSize(img)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		var unc int64
		for _, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.Copy(io.Discard, rc)
			rc.Close()
			unc += m
		}
		t.Logf("size %-17s %6.1f MB compressed, %6.1f MB as tar, %d layers", k, float64(n)/1e6, float64(unc)/1e6, len(ls))
	}
}

// probeSource is a static program run inside the runtime image: who it runs as, what
// the image holds.
const probeSource = `package main

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"os/user"
)

func main() {
	out := map[string]any{"uid": os.Getuid(), "gid": os.Getgid()}
	if u, err := user.Current(); err == nil {
		out["user"], out["home"] = u.Username, u.HomeDir
	} else {
		out["userErr"] = err.Error()
	}
	if p, err := x509.SystemCertPool(); err == nil {
		out["certs"] = len(p.Subjects()) //nolint
	}
	if fi, err := os.Stat("/tmp"); err == nil {
		out["tmpMode"] = fi.Mode().String()
	}
	if f, err := os.CreateTemp("/tmp", "probe"); err == nil {
		out["tmpWritable"] = true
		f.Close()
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	out["passwd"] = string(passwd)
	json.NewEncoder(os.Stdout).Encode(out)
}
`

func buildStatic(t *testing.T, dir, src string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probe\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "probe", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v: %s", err, out)
	}
	return filepath.Join(dir, "probe")
}

func testRuntime(t *testing.T, c *containerd, work, ref string) {
	files, cf := imageFiles(t, ref)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt", "home", "home/nonroot", "tmp"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("runtime image holds %v, want exactly %v", names, want)
	}
	if h := files["tmp"]; h == nil || h.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777", h)
	}
	if h := files["home/nonroot"]; h == nil || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %+v, want owned by 65532", h)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("runtime user %q, want 65532:65532", cf.Config.User)
	}

	dir := filepath.Join(work, "probe")
	buildStatic(t, dir, probeSource)
	out, code := c.run(time.Minute, runOpts{mounts: []string{bind(dir, "/probe", true)}}, ref, "runtime-probe", "/probe/probe")
	if code != 0 {
		t.Fatalf("probe in the runtime image exited %d: %s", code, out)
	}
	var got struct {
		UID, GID    int
		User, Home  string
		Certs       int
		TmpMode     string
		TmpWritable bool
		Passwd      string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	t.Logf("runtime probe: uid %d gid %d user %s home %s certs %d /tmp %s", got.UID, got.GID, got.User, got.Home, got.Certs, got.TmpMode)
	if got.UID != 65532 || got.GID != 65532 || got.User != "nonroot" || got.Home != "/home/nonroot" {
		t.Errorf("runs as %d:%d %q (home %q), want 65532:65532 nonroot /home/nonroot", got.UID, got.GID, got.User, got.Home)
	}
	if !strings.Contains(got.Passwd, "nonroot:x:65532:65532:") || !strings.Contains(got.Passwd, "nobody:x:65534:65534:") || !strings.HasPrefix(got.Passwd, "root:x:0:0:") {
		t.Errorf("/etc/passwd:\n%s", got.Passwd)
	}
	if got.Certs < 50 {
		t.Errorf("%d CA certificates in the system pool, want the Debian bundle", got.Certs)
	}
	if got.TmpMode != "dtrwxrwxrwx" || !got.TmpWritable {
		t.Errorf("/tmp mode %s writable %v, want dtrwxrwxrwx and writable", got.TmpMode, got.TmpWritable)
	}
}

func testCoreDNS(t *testing.T, c *containerd, work, ref string) {
	out, code := c.run(time.Minute, runOpts{readOnly: true}, ref, "coredns-version", "/coredns", "-version")
	if code != 0 || !strings.Contains(out, "CoreDNS-1.") {
		t.Fatalf("coredns -version: exit %d: %s", code, out)
	}
	t.Logf("coredns -version: %s", strings.TrimSpace(out))
	files, cf := imageFiles(t, ref)
	if cf.Config.User != "65532:65532" || strings.Join(cf.Config.Entrypoint, " ") != "/coredns" {
		t.Errorf("coredns config: user %q entrypoint %v", cf.Config.User, cf.Config.Entrypoint)
	}
	if h := files["coredns"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] != capNetBindService {
		t.Errorf("/coredns lacks the cap_net_bind_service file capability: %+v", h)
	}
	// As uid 65532, on port 53 of its own network namespace: the file capability
	// lets a non-root CoreDNS bind it, as in the official image.
	dir := filepath.Join(work, "coredns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(".:53 {\n    errors\n    log\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tk := c.start(runOpts{readOnly: true, mounts: []string{bind(dir, "/etc/coredns", true)}}, ref, "coredns-53", "/coredns", "-conf", "/etc/coredns/Corefile")
	time.Sleep(2 * time.Second)
	if _, code := tk.exec(5*time.Second, "/coredns", "-version"); code != 0 {
		t.Errorf("exec in the coredns container failed")
	}
	select {
	case err := <-tk.done:
		tk.done <- err
		t.Fatalf("coredns on :53 as 65532 exited: %v\n%s", err, tk.out)
	default:
	}
	if !strings.Contains(tk.out.String(), ".:53") {
		t.Errorf("coredns did not report serving .:53:\n%s", tk.out)
	}
	if code := tk.signal("SIGTERM", 15*time.Second); code != 0 {
		t.Errorf("coredns exit %d after SIGTERM:\n%s", code, tk.out)
	}
}

func testPause(t *testing.T, c *containerd, ref string) {
	_, cf := imageFiles(t, ref)
	if strings.Join(cf.Config.Entrypoint, " ") != "/pause" || cf.Config.User != "65535:65535" {
		t.Errorf("pause config: entrypoint %v user %q", cf.Config.Entrypoint, cf.Config.User)
	}
	tk := c.start(runOpts{readOnly: true}, ref, "pause")
	time.Sleep(time.Second)
	select {
	case err := <-tk.done:
		tk.done <- err
		t.Fatalf("pause exited by itself: %v: %s", err, tk.out)
	default:
	}
	if code := tk.signal("SIGTERM", 10*time.Second); code != 0 {
		t.Fatalf("pause exited %d after SIGTERM, want 0: %s", code, tk.out)
	}
	if !strings.Contains(tk.out.String(), "Shutting down, got signal") {
		t.Errorf("pause output: %q", tk.out)
	}
}

const helloSource = `package main

import "fmt"

func main() { fmt.Println("hello from the go builder") }
`

func testGoBuilder(t *testing.T, c *containerd, work, ref string) {
	src := filepath.Join(work, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(helloSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
go version
git --version
test -s /etc/ssl/certs/ca-certificates.crt
echo "GOPATH=$GOPATH GOTOOLCHAIN=$GOTOOLCHAIN GOLANG_VERSION=$GOLANG_VERSION PWD=$(pwd)"
cd /src
CGO_ENABLED=0 go build -trimpath -o /src/hello .
/src/hello`
	out, code := c.run(10*time.Minute, runOpts{mounts: []string{bind(src, "/src", false)}}, ref, "go-builder", "sh", "-c", script)
	t.Logf("go builder:\n%s", out)
	if code != 0 {
		t.Fatalf("go builder exited %d", code)
	}
	for _, want := range []string{"go version go" + GoVersion + " linux/amd64", "git version 2.", "GOPATH=/go GOTOOLCHAIN=local GOLANG_VERSION=" + GoVersion + " PWD=/go", "hello from the go builder"} {
		if !strings.Contains(out, want) {
			t.Errorf("go builder output lacks %q", want)
		}
	}
	f, err := elf.Open(filepath.Join(src, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("hello is dynamically linked; CGO_ENABLED=0 should give a static binary")
		}
	}
}

// mkdirOwned makes a directory owned by uid:gid with mode.
func mkdirOwned(t *testing.T, dir string, uid, gid int, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func httpGet(url string) (int, string, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func testPostgres(t *testing.T, c *containerd, work, ref, exporterRef string) {
	files, cf := imageFiles(t, ref)
	if _, ok := files["usr/local/bin/docker-entrypoint.sh"]; !ok {
		t.Error("no /usr/local/bin/docker-entrypoint.sh")
	}
	if cf.Config.StopSignal != "SIGINT" || strings.Join(cf.Config.Cmd, " ") != "postgres" {
		t.Errorf("postgres config: stop signal %q cmd %v", cf.Config.StopSignal, cf.Config.Cmd)
	}
	as70 := withUser(t, ref, "70:70")
	c.pull(as70)

	// The manifests' shape: uid 70, read-only root, a volume group-owned by 70 at
	// /var/lib/postgresql/data with PGDATA a subdirectory, emptyDirs at
	// /var/run/postgresql and /tmp.
	dir := filepath.Join(work, "pg")
	data := mkdirOwned(t, filepath.Join(dir, "data"), 0, 70, 0o2775)
	run := mkdirOwned(t, filepath.Join(dir, "run"), 0, 0, 0o777)
	tmp := mkdirOwned(t, filepath.Join(dir, "tmp"), 0, 0, 0o1777)
	password := randomHex(t)
	port := freePort(t)
	o := runOpts{
		readOnly: true, netHost: true,
		env: []string{"POSTGRES_USER=darktower", "POSTGRES_DB=dark_tower", "PGDATA=/var/lib/postgresql/data/pgdata", "POSTGRES_PASSWORD=" + password},
		mounts: []string{bind(data, "/var/lib/postgresql/data", false), bind(run, "/var/run/postgresql", false),
			bind(tmp, "/tmp", false)},
	}
	// `-p PORT` instead of 5432: the test uses the host's network.
	tk := c.start(o, as70, "postgres", "docker-entrypoint.sh", "postgres", "-p", strconv.Itoa(port))
	isReady := []string{"pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "darktower", "-d", "dark_tower"}
	testsupport.Eventually(t, 2*time.Minute, "pg_isready", func() error {
		select {
		case err := <-tk.done:
			tk.done <- err
			t.Fatalf("postgres exited: %v\n%s", err, tk.out)
		default:
		}
		out, code := tk.exec(10*time.Second, isReady...)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	if out, code := tk.exec(10*time.Second, "id", "-u"); code != 0 || strings.TrimSpace(out) != "70" {
		t.Errorf("id -u in the container: %q (exit %d), want 70", out, code)
	}
	if out, code := tk.exec(10*time.Second, "psql", "-p", strconv.Itoa(port), "-U", "darktower", "-d", "dark_tower", "-Atc", "select 1"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Errorf("psql over the socket: %q (exit %d)", out, code)
	}
	// No process of the machine shows the password in its arguments.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(password)) {
			t.Errorf("pid %s has the password on its command line", e.Name())
		}
	}
	// Over TCP: the password is required (scram-sha-256) and works.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := fmt.Sprintf("postgres://darktower:%s@127.0.0.1:%d/dark_tower?sslmode=disable", password, port)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect with the password: %v", err)
	}
	var user, db, listen, enc string
	if err := conn.QueryRow(ctx, "select current_user, current_database(), current_setting('listen_addresses'), current_setting('password_encryption')").Scan(&user, &db, &listen, &enc); err != nil {
		t.Fatal(err)
	}
	var method string
	if err := conn.QueryRow(ctx, "select auth_method from pg_hba_file_rules where type = 'host' and address = 'all'").Scan(&method); err != nil {
		t.Errorf("pg_hba rule for all addresses: %v", err)
	}
	conn.Close(ctx)
	if user != "darktower" || db != "dark_tower" || listen != "*" || enc != "scram-sha-256" || method != "scram-sha-256" {
		t.Errorf("got user %s db %s listen_addresses %q password_encryption %s host auth %s", user, db, listen, enc, method)
	}
	if _, err := pgx.Connect(ctx, strings.Replace(url, password, "wrong", 1)); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Errorf("wrong password: %v, want SQLSTATE 28P01", err)
	}

	t.Run("exporter", func(t *testing.T) {
		out, code := c.run(time.Minute, runOpts{readOnly: true}, exporterRef, "pg-exporter-version", "/bin/postgres_exporter", "--version")
		if code != 0 || !strings.Contains(out, "postgres_exporter, version 0.11") {
			t.Fatalf("postgres_exporter --version: exit %d: %s", code, out)
		}
		_, ecf := imageFiles(t, exporterRef)
		if strings.Join(ecf.Config.Entrypoint, " ") != "/bin/postgres_exporter" || ecf.Config.User != "65534:65534" {
			t.Errorf("exporter config: entrypoint %v user %q", ecf.Config.Entrypoint, ecf.Config.User)
		}
		eport := freePort(t)
		// The manifest's interface: DATA_SOURCE_URI/USER/PASS, --web.listen-address, --log.format=json.
		ex := c.start(runOpts{readOnly: true, netHost: true, env: []string{
			fmt.Sprintf("DATA_SOURCE_URI=127.0.0.1:%d/dark_tower?sslmode=disable", port),
			"DATA_SOURCE_USER=darktower", "DATA_SOURCE_PASS=" + password,
		}}, exporterRef, "pg-exporter", "/bin/postgres_exporter", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", eport), "--log.format=json")
		testsupport.Eventually(t, 30*time.Second, "postgres_exporter /metrics", func() error {
			code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", eport))
			if err != nil {
				return err
			}
			if code != 200 || !regexp.MustCompile(`(?m)^pg_up 1$`).MatchString(body) {
				return fmt.Errorf("status %d, no pg_up 1", code)
			}
			return nil
		})
		// The series the repository's alert rules and dashboards use.
		_, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", eport))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"pg_up", "pg_stat_database_numbackends", "pg_stat_database_xact_commit", "pg_stat_database_xact_rollback",
			"pg_stat_database_deadlocks", "pg_settings_max_connections", "pg_database_size_bytes"} {
			if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(body) {
				t.Errorf("postgres_exporter 0.11 does not export %s", m)
			}
		}
		if code, _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", eport)); err != nil || code != 200 {
			t.Errorf("GET / (the manifest's probe path): %d %v", code, err)
		}
		if l := strings.TrimSpace(ex.out.String()); l != "" && !strings.HasPrefix(l, "{") {
			t.Errorf("--log.format=json, but the log is:\n%s", l)
		}
		ex.signal("SIGTERM", 10*time.Second)
	})

	t.Run("as-root", func(t *testing.T) {
		// The image's own user (root, as in the official image): the entrypoint makes
		// the directories and drops to postgres (70) before initdb.
		// The password comes from a file (POSTGRES_PASSWORD_FILE, a mounted Secret).
		rdir := filepath.Join(dir, "root")
		rport := freePort(t)
		secrets := mkdirOwned(t, filepath.Join(rdir, "secrets"), 0, 0, 0o700)
		rpw := randomHex(t)
		if err := os.WriteFile(filepath.Join(secrets, "pw"), []byte(rpw+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
		ro := runOpts{readOnly: true, netHost: true,
			env: []string{"POSTGRES_PASSWORD_FILE=/run/secrets/pg/pw"},
			mounts: []string{bind(secrets, "/run/secrets/pg", true),
				bind(mkdirOwned(t, filepath.Join(rdir, "data"), 0, 0, 0o755), "/var/lib/postgresql/data", false),
				bind(mkdirOwned(t, filepath.Join(rdir, "run"), 0, 0, 0o755), "/var/run/postgresql", false),
				bind(mkdirOwned(t, filepath.Join(rdir, "tmp"), 0, 0, 0o1777), "/tmp", false)}}
		rt := c.start(ro, ref, "postgres-root", "docker-entrypoint.sh", "postgres", "-p", strconv.Itoa(rport))
		testsupport.Eventually(t, 2*time.Minute, "pg_isready (started as root)", func() error {
			out, code := rt.exec(10*time.Second, "pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(rport), "-U", "postgres")
			if code != 0 {
				return fmt.Errorf("exit %d: %s", code, out)
			}
			return nil
		})
		if out, _ := rt.exec(10*time.Second, "grep", "^Uid:", "/proc/1/status"); !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "Uid: 70 70 70 70") {
			t.Errorf("PID 1 (postgres) runs as %q, want uid 70", out)
		}
		rconn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", rpw, rport))
		if err != nil {
			t.Errorf("connect with the password from POSTGRES_PASSWORD_FILE: %v", err)
		} else {
			rconn.Close(ctx)
		}
		if code := rt.signal("SIGTERM", 60*time.Second); code != 0 {
			t.Errorf("exit %d after SIGTERM", code)
		}
	})

	// SIGTERM to PID 1 (postgres itself, after the entrypoint's exec): a clean shutdown.
	if code := tk.signal("SIGTERM", 60*time.Second); code != 0 {
		t.Errorf("postgres exit %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(tk.out.String(), "database system is shut down") {
		t.Errorf("no clean shutdown in the log:\n%s", tail(tk.out.String(), 2000))
	}
	// Started again on the same PGDATA: no second initdb, same password.
	tk2 := c.start(o, as70, "postgres-again", "docker-entrypoint.sh", "postgres", "-p", strconv.Itoa(port))
	testsupport.Eventually(t, time.Minute, "pg_isready after restart", func() error {
		out, code := tk2.exec(10*time.Second, isReady...)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	if strings.Contains(tk2.out.String(), "initialising") {
		t.Errorf("initdb ran again on an initialised PGDATA:\n%s", tk2.out)
	}
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	conn.Close(ctx)
	tk2.signal("SIGINT", 60*time.Second)
}

func testRedis(t *testing.T, c *containerd, work, root, ref, exporterRef string) {
	_, cf := imageFiles(t, ref)
	if cf.Config.User != "999:1000" {
		t.Errorf("redis user %q, want 999:1000", cf.Config.User)
	}
	dir := filepath.Join(work, "redis")
	conf := mkdirOwned(t, filepath.Join(dir, "conf"), 0, 1000, 0o750)
	data := mkdirOwned(t, filepath.Join(dir, "data"), 999, 1000, 0o770)
	// The cluster's redis.conf (infra/services/redis/secret.yaml) on a free loopback
	// port: Debian's 7.0 must accept every directive written for 7.4.
	cfg, password := clusterRedisConf(t, root)
	port := freePort(t)
	cfg = strings.Replace(cfg, "bind 0.0.0.0 -::*", "bind 127.0.0.1", 1)
	cfg = strings.Replace(cfg, "port 6379", fmt.Sprintf("port %d", port), 1)
	if !strings.Contains(cfg, fmt.Sprintf("port %d", port)) || !strings.Contains(cfg, "bind 127.0.0.1") {
		t.Fatalf("cannot move the cluster's redis.conf to a loopback test port:\n%s", cfg)
	}
	if err := os.WriteFile(filepath.Join(conf, "redis.conf"), []byte(cfg), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(conf, "redis.conf"), 0, 1000); err != nil {
		t.Fatal(err)
	}
	// The manifest: command redis-server /etc/redis/redis.conf, REDISCLI_AUTH for the
	// probes, read-only root, config read-only at /etc/redis, data at /data.
	tk := c.start(runOpts{readOnly: true, netHost: true, env: []string{"REDISCLI_AUTH=" + password},
		mounts: []string{bind(conf, "/etc/redis", true), bind(data, "/data", false)}},
		ref, "redis", "redis-server", "/etc/redis/redis.conf")
	probe := fmt.Sprintf("redis-cli -h 127.0.0.1 -p %d ping | grep -qx PONG", port)
	testsupport.Eventually(t, 30*time.Second, "redis probe", func() error {
		out, code := tk.exec(10*time.Second, "sh", "-c", probe)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	if out, _ := tk.exec(10*time.Second, "sh", "-c", fmt.Sprintf("REDISCLI_AUTH= redis-cli --no-auth-warning -h 127.0.0.1 -p %d ping", port)); !strings.Contains(out, "NOAUTH") {
		t.Errorf("ping without the password: %q, want NOAUTH", out)
	}
	if out, code := tk.exec(10*time.Second, "id"); code != 0 || !strings.Contains(out, "uid=999(redis) gid=1000(redis)") {
		t.Errorf("id: %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, "appendonlydir")); err != nil {
		t.Errorf("no AOF in /data: %v", err)
	}

	if out, code := tk.exec(10*time.Second, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "set", "k", "v"); code != 0 || strings.TrimSpace(out) != "OK" {
		t.Errorf("redis-cli set: %q (exit %d)", out, code)
	}

	t.Run("exporter", func(t *testing.T) {
		out, code := c.run(time.Minute, runOpts{readOnly: true}, exporterRef, "redis-exporter-version", "/redis_exporter", "--version")
		if code != 0 || !strings.Contains(out, "Redis Metrics Exporter 1.45") {
			t.Fatalf("redis_exporter --version: exit %d: %s", code, out)
		}
		_, ecf := imageFiles(t, exporterRef)
		if strings.Join(ecf.Config.Entrypoint, " ") != "/redis_exporter" || ecf.Config.User != "59000:59000" {
			t.Errorf("exporter config: entrypoint %v user %q", ecf.Config.Entrypoint, ecf.Config.User)
		}
		eport := freePort(t)
		// The manifest's interface: everything through the environment.
		ex := c.start(runOpts{readOnly: true, netHost: true, env: []string{
			fmt.Sprintf("REDIS_ADDR=redis://127.0.0.1:%d", port), "REDIS_PASSWORD=" + password,
			fmt.Sprintf("REDIS_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:%d", eport), "REDIS_EXPORTER_LOG_FORMAT=json",
		}}, exporterRef, "redis-exporter")
		testsupport.Eventually(t, 30*time.Second, "redis_exporter /metrics", func() error {
			code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", eport))
			if err != nil {
				return err
			}
			if code != 200 || !regexp.MustCompile(`(?m)^redis_up 1$`).MatchString(body) {
				return fmt.Errorf("status %d, no redis_up 1", code)
			}
			return nil
		})
		_, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", eport))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"redis_up", "redis_aof_enabled", "redis_aof_last_write_status", "redis_aof_last_bgrewrite_status",
			"redis_memory_used_bytes", "redis_db_keys", "redis_connected_clients", "redis_commands_processed_total"} {
			if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(body) {
				t.Errorf("redis_exporter 1.45 does not export %s", m)
			}
		}
		if code, _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/health", eport)); err != nil || code != 200 {
			t.Errorf("GET /health (the manifest's probe path): %d %v", code, err)
		}
		if l := strings.TrimSpace(ex.out.String()); !strings.HasPrefix(l, "{") {
			t.Errorf("REDIS_EXPORTER_LOG_FORMAT=json, but the log is:\n%s", l)
		}
		ex.signal("SIGTERM", 10*time.Second)
	})
	if code := tk.signal("SIGTERM", 30*time.Second); code != 0 {
		t.Errorf("redis exit %d after SIGTERM", code)
	}
}

func testPrometheus(t *testing.T, c *containerd, work, root, ref string) {
	out, code := c.run(time.Minute, runOpts{readOnly: true}, ref, "prometheus-version", "/bin/prometheus", "--version")
	if code != 0 || !strings.Contains(out, "prometheus, version "+PrometheusVersion) {
		t.Fatalf("prometheus --version: exit %d: %s", code, out)
	}
	_, cf := imageFiles(t, ref)
	if strings.Join(cf.Config.Entrypoint, " ") != "/bin/prometheus" || cf.Config.User != "65534:65534" {
		t.Errorf("prometheus config: entrypoint %v user %q", cf.Config.Entrypoint, cf.Config.User)
	}
	// The deployment's shape: read-only root, config at /etc/prometheus, data at
	// /prometheus (an emptyDir), args as in the manifest. Its own config needs the
	// Kubernetes API, so it runs with a small one here; the node tests run the
	// repository's in the cluster.
	dir := filepath.Join(work, "prom")
	conf := mkdirOwned(t, filepath.Join(dir, "conf"), 0, 0, 0o755)
	data := mkdirOwned(t, filepath.Join(dir, "data"), 65534, 65534, 0o755)
	port := freePort(t)
	small := fmt.Sprintf("global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n", port)
	if err := os.WriteFile(filepath.Join(conf, "prometheus.yaml"), []byte(small), 0o644); err != nil {
		t.Fatal(err)
	}
	tk := c.start(runOpts{readOnly: true, netHost: true, mounts: []string{
		bind(conf, "/etc/prometheus", true), bind(data, "/prometheus", false)}},
		ref, "prometheus", "/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yaml", "--storage.tsdb.path=/prometheus",
		"--storage.tsdb.retention.time=2d", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	for _, p := range []string{"/-/ready", "/-/healthy"} {
		testsupport.Eventually(t, time.Minute, "prometheus "+p, func() error {
			code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d%s", port, p))
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("status %d: %s", code, body)
			}
			return nil
		})
	}
	if code := tk.signal("SIGTERM", 30*time.Second); code != 0 {
		t.Errorf("prometheus exit %d after SIGTERM", code)
	}
}

// clusterRedisConf returns redis.conf and the password from the cluster's Secret.
func clusterRedisConf(t *testing.T, root string) (string, string) {
	t.Helper()
	path := filepath.Join(root, "infra/services/redis/secret.yaml")
	objs, err := manifest.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file names no namespace; Kustomize adds it.
	sec, err := manifest.Set{Source: path, Objects: objs}.Data("Secret", "", "redis-credentials")
	if err != nil {
		t.Fatal(err)
	}
	conf, pw := sec["redis.conf"], sec["REDIS_PASSWORD"]
	if conf == "" || pw == "" || !strings.Contains(conf, "requirepass "+pw) {
		t.Fatalf("infra/services/redis/secret.yaml: no redis.conf with REDIS_PASSWORD as requirepass")
	}
	return conf, pw
}
