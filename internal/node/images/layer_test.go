package images

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func readLayer(t *testing.T, path string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func keys(m map[string]*tar.Header) string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, " ")
}

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour) // as files extracted from a tarball are
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestWriteLayerDiff: a layer over a snapshot holds what is new or changed, whiteouts
// for what went (the topmost path only), hard links within the layer, and none of the
// paths images never carry.
func TestWriteLayerDiff(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/keep", "same")
	write(t, root, "etc/change", "before")
	write(t, root, "etc/gone", "x")
	write(t, root, "opt/gonedir/a", "x")
	write(t, root, "opt/gonedir/sub/b", "x")
	write(t, root, "var/lib/apt/lists/Packages", "lists")
	write(t, root, "usr/share/doc/pkg/copyright", "c")

	base := t.TempDir()
	full := filepath.Join(base, "full.tar.gz")
	if _, err := writeLayer(root, full, nil); err != nil {
		t.Fatal(err)
	}
	got := keys(readLayer(t, full))
	want := "etc etc/change etc/gone etc/keep opt opt/gonedir opt/gonedir/a opt/gonedir/sub opt/gonedir/sub/b usr usr/share usr/share/doc usr/share/doc/pkg usr/share/doc/pkg/copyright var var/lib var/lib/apt var/lib/apt/lists"
	if got != want {
		t.Errorf("full layer:\n got %s\nwant %s", got, want)
	}

	snap, err := takeSnapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "etc/change", "after!")
	if err := os.Remove(filepath.Join(root, "etc/gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "opt/gonedir")); err != nil {
		t.Fatal(err)
	}
	write(t, root, "usr/bin/new", "new")
	if err := os.Link(filepath.Join(root, "usr/bin/new"), filepath.Join(root, "usr/bin/new2")); err != nil {
		t.Fatal(err)
	}
	write(t, root, "usr/share/doc/pkg/README", "dropped")
	write(t, root, "usr/share/man/man1/x.1", "dropped")
	write(t, root, "var/lib/apt/lists/Other", "dropped")
	write(t, root, "var/lib/dpkg/status-old", "dropped")
	if err := os.Remove(filepath.Join(root, "var/lib/apt/lists/Packages")); err != nil {
		t.Fatal(err)
	}

	diff := filepath.Join(base, "diff.tar.gz")
	if _, err := writeLayer(root, diff, snap); err != nil {
		t.Fatal(err)
	}
	hs := readLayer(t, diff)
	// New directories appear (usr/bin, usr/share/man, ...); the changed file, the new
	// ones and the whiteouts; no excluded file, no whiteout for an excluded path.
	want = "etc/.wh.gone etc/change opt/.wh.gonedir usr/bin usr/bin/new usr/bin/new2 usr/share/man usr/share/man/man1 var/lib/dpkg"
	if got := keys(hs); got != want {
		t.Errorf("diff layer:\n got %s\nwant %s", got, want)
	}
	if h := hs["usr/bin/new2"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/new" {
		t.Errorf("usr/bin/new2: %+v, want a hard link to usr/bin/new", h)
	}
}

func TestExcluded(t *testing.T) {
	for rel, want := range map[string]bool{
		"usr/share/doc/git/copyright":      false,
		"usr/share/doc/git/README.md":      true,
		"usr/share/locale/de/LC_MESSAGES":  false, // a directory: kept, empty
		"dev/null":                         true,
		"etc/resolv.conf":                  true,
		"etc/passwd-":                      true,
		"etc/passwd":                       false,
		"var/cache/debconf/config.dat":     false,
		"var/cache/debconf/config.dat-old": true,
		"usr/bin/git":                      false,
	} {
		isDir := rel == "usr/share/locale/de/LC_MESSAGES"
		if got := excluded(rel, isDir); got != want {
			t.Errorf("excluded(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestHostMirrorsSourcesList(t *testing.T) {
	m := mirrors{Debian: "http://deb.example/debian", Security: "http://deb.example/debian-security"}
	want := "deb http://deb.example/debian bookworm main\ndeb http://deb.example/debian bookworm-updates main\ndeb http://deb.example/debian-security bookworm-security main\n"
	if got := m.sourcesList(); got != want {
		t.Errorf("sources.list:\n%s\nwant\n%s", got, want)
	}
	if hm := hostMirrors(); hm.Debian == "" || hm.Security == "" {
		t.Errorf("hostMirrors: %+v", hm)
	}
}
