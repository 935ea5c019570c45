package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/darktower/devstack/internal/mounts"
)

// The Debian side: one debootstrap'd bookworm root filesystem, cached as a tarball in
// CacheDir under a key made of the suite, the day it was made and baseRevision, from
// which every Debian-package image is derived by `apt-get install` in a chroot.
//
// Every command that mounts anything (debootstrap mounts /proc and /sys in its target;
// the chroot needs /proc, /dev and the .deb cache) runs in a new mount namespace with
// private propagation and a new PID namespace: its mounts are never visible to the
// host, and they vanish, with any daemon a maintainer script might have started, when
// the command exits or is killed, whatever happens to this process. The scripts also
// unmount what they mounted on the way out.

const (
	suite = "bookworm"
	// baseRevision changes when what goes into the base rootfs changes.
	baseRevision = "r1"
	// basePackages are added to debootstrap's minbase: every image wants CA certificates.
	basePackages = "ca-certificates"
)

// mirrors are the Debian archive and security archive apt uses on this machine.
type mirrors struct{ Debian, Security string }

// hostMirrors reads the host's apt sources (deb822 .sources files and one-line
// sources.list) for the URIs that serve bookworm and bookworm-security.
func hostMirrors() mirrors {
	m := mirrors{}
	var texts []string
	for _, pat := range []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		files, _ := filepath.Glob(pat)
		sort.Strings(files)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				texts = append(texts, string(b))
			}
		}
	}
	note := func(uri string, suites []string) {
		uri = strings.TrimSuffix(uri, "/")
		for _, s := range suites {
			switch s {
			case suite:
				if m.Debian == "" {
					m.Debian = uri
				}
			case suite + "-security", suite + "/updates":
				if m.Security == "" {
					m.Security = uri
				}
			}
		}
	}
	for _, text := range texts {
		// deb822 stanzas.
		for _, stanza := range strings.Split(text, "\n\n") {
			var uris, suites []string
			for _, line := range strings.Split(stanza, "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				switch strings.TrimSpace(k) {
				case "URIs":
					uris = strings.Fields(v)
				case "Suites":
					suites = strings.Fields(v)
				}
			}
			for _, u := range uris {
				note(u, suites)
			}
		}
		// One-line format: deb [options] uri suite components...
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			f = f[1:]
			if strings.HasPrefix(f[0], "[") {
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 {
				note(f[0], f[1:2])
			}
		}
	}
	if m.Debian == "" {
		m.Debian = "http://deb.debian.org/debian"
	}
	if m.Security == "" {
		m.Security = "http://deb.debian.org/debian-security"
	}
	return m
}

func (m mirrors) sourcesList() string {
	return fmt.Sprintf("deb %[1]s %[3]s main\ndeb %[1]s %[3]s-updates main\ndeb %[2]s %[3]s-security main\n", m.Debian, m.Security, suite)
}

// aptConf goes into the base rootfs (and so into the images): apt installs only what
// it is asked for and what that depends on.
const aptConf = `APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT::Sandbox::User "root";
Dpkg::Use-Pty "false";
`

// base is a cached bookworm root filesystem.
type base struct {
	Key     string // e.g. debian-bookworm-20261201-r1
	Dir     string // CacheDir/<Key>
	Tarball string // Dir/rootfs.tar.gz
	Made    time.Time
}

func (b base) debs() string { return filepath.Join(b.Dir, "debs") }

// findBase returns the newest cached base younger than maxAge.
func findBase(cacheDir string, maxAge time.Duration, now time.Time) (base, bool) {
	dirs, _ := filepath.Glob(filepath.Join(cacheDir, "debian-"+suite+"-*-"+baseRevision))
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		key := filepath.Base(d)
		day := strings.TrimSuffix(strings.TrimPrefix(key, "debian-"+suite+"-"), "-"+baseRevision)
		made, err := time.Parse("20060102", day)
		if err != nil || now.Sub(made) > maxAge {
			continue
		}
		b := base{Key: key, Dir: d, Tarball: filepath.Join(d, "rootfs.tar.gz"), Made: made}
		if _, err := os.Stat(b.Tarball); err == nil {
			return b, true
		}
	}
	return base{}, false
}

func newBase(cacheDir string, now time.Time) base {
	day := now.UTC().Format("20060102")
	key := "debian-" + suite + "-" + day + "-" + baseRevision
	made, _ := time.Parse("20060102", day)
	d := filepath.Join(cacheDir, key)
	return base{Key: key, Dir: d, Tarball: filepath.Join(d, "rootfs.tar.gz"), Made: made}
}

// isolated runs a shell script as root in new mount (private) and PID namespaces.
// Output goes to log; the last lines of it come back in the error.
func isolated(ctx context.Context, log io.Writer, script string, args ...string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-ec", script, "sh"}, args...)...)
	var tail tailBuffer
	cmd.Stdout = io.MultiWriter(log, &tail)
	cmd.Stderr = cmd.Stdout
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:   syscall.CLONE_NEWPID,
		Unshareflags: syscall.CLONE_NEWNS, // Go makes / rprivate in the child first
		Pdeathsig:    syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		return &scriptError{err: err, tail: tail.String()}
	}
	return nil
}

type scriptError struct {
	err  error
	tail string
}

func (e *scriptError) Error() string { return fmt.Sprintf("%v; last output:\n%s", e.err, e.tail) }
func (e *scriptError) Unwrap() error { return e.err }

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}
func (t *tailBuffer) String() string { return string(t.b) }

// chrootPrelude mounts what apt needs into the root filesystem $R and arranges for it to
// be unmounted on exit; $DEBS is the .deb cache bound at /var/cache/apt/archives.
const chrootPrelude = `
R="$1"; DEBS="$2"; shift 2
cleanup() { umount "$R/var/cache/apt/archives" 2>/dev/null || true; umount "$R/dev" 2>/dev/null || true; umount "$R/proc" 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$DEBS/partial" "$R/var/cache/apt/archives"
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount --bind "$DEBS" "$R/var/cache/apt/archives"
cp /etc/resolv.conf "$R/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true /bin/sh -ec "$1"; }
`

// chrootEpilogue removes what the prelude put into the tree.
const chrootEpilogue = `
rm -f "$R/usr/sbin/policy-rc.d" "$R/etc/resolv.conf"
`

// inChroot runs inner (a /bin/sh script) inside the root filesystem dir with /proc, /dev
// and the .deb cache mounted, in its own namespaces.
func inChroot(ctx context.Context, log io.Writer, dir, debs, inner string) error {
	return isolated(ctx, log, chrootPrelude+"in_root \"$1\"\n"+chrootEpilogue, dir, debs, inner)
}

// buildBase debootstraps a new base rootfs and stores it as b.Tarball.
func buildBase(ctx context.Context, log io.Writer, b base, work string, m mirrors) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap is not installed (apt-get install debootstrap)")
	}
	root := filepath.Join(work, "base-root")
	if err := removeTree(root); err != nil {
		return err
	}
	fmt.Fprintf(log, "images: debootstrap %s (minbase + %s) from %s\n", suite, basePackages, m.Debian)
	start := time.Now()
	// debootstrap mounts /proc and /sys in the target; in its own namespaces they can
	// never outlive it.
	err := isolated(ctx, log, `debootstrap --variant=minbase --include="$3" --components=main "$4" "$1" "$2"`,
		root, m.Debian, basePackages, suite)
	if err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	if err := os.MkdirAll(b.debs(), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(m.sourcesList()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/apt/apt.conf.d/90darktower"), []byte(aptConf), 0o644); err != nil {
		return err
	}
	// The updates and security suites, and the lists every later install uses.
	if err := inChroot(ctx, log, root, b.debs(), `apt-get update -q && apt-get -y -q upgrade && rm -f /var/cache/apt/*.bin`); err != nil {
		return fmt.Errorf("apt-get upgrade in the base: %w", err)
	}
	for _, p := range []string{"debootstrap", "var/log/bootstrap.log"} {
		os.RemoveAll(filepath.Join(root, p))
	}
	tmp := b.Tarball + ".tmp"
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-czpf", tmp, "-C", root, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tar the base: %v: %s", err, out)
	}
	if err := os.Rename(tmp, b.Tarball); err != nil {
		return err
	}
	fmt.Fprintf(log, "images: base %s ready in %s\n", b.Key, time.Since(start).Round(time.Second))
	return removeTree(root)
}

// extract unpacks the base tarball into dir (which must not exist).
func extract(ctx context.Context, tarball, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-xzpf", tarball, "-C", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("extract %s: %v: %s", tarball, err, out)
	}
	return nil
}

// copyTree copies a root filesystem (modes, owners, links, times).
func copyTree(ctx context.Context, src, dst string) error {
	cmd := exec.CommandContext(ctx, "cp", "-a", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %v: %s", src, err, out)
	}
	return nil
}

// removeTree deletes dir, refusing if anything is mounted beneath it (a bind mount of
// /dev under a tree being deleted would take the host's device nodes with it).
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	under, err := mounts.Under(abs)
	if err != nil {
		return err
	}
	for i := len(under) - 1; i >= 0; i-- {
		_ = syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
	if under, err = mounts.Under(abs); err != nil {
		return err
	} else if len(under) > 0 {
		return fmt.Errorf("refusing to delete %s: still mounted beneath it: %v", dir, under)
	}
	return os.RemoveAll(abs)
}
