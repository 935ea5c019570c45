package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// A layer is written as a gzip'd tar file from a directory tree: either the whole tree
// (the shared Debian base layer) or only what changed against a snapshot of that tree
// taken before packages were installed (each image's own layer), with OCI whiteouts for
// what was removed. Paths the images never carry (documentation, apt's lists and
// caches, logs, /dev, files the runtime provides) are left out of both in the same way,
// so the base rootfs keeps them for the next apt-get while no image does.

// entry is what a snapshot remembers of one path.
type entry struct {
	mode  fs.FileMode
	uid   uint32
	gid   uint32
	size  int64
	mtime time.Time
	link  string
}

type snapshot map[string]entry // relative slash path -> entry

// excluded reports whether rel (a slash path relative to the root, no leading slash)
// is left out of every layer. Directories are kept (they cost a header each) unless
// their whole subtree is never wanted; files under documentation trees are dropped
// except Debian's copyright files.
func excluded(rel string, isDir bool) bool {
	switch rel {
	case "etc/resolv.conf", "etc/hostname", "etc/hosts", "etc/machine-id",
		"usr/sbin/policy-rc.d", "etc/dpkg/dpkg.cfg.d/darktower-nodoc":
		return true
	}
	for _, p := range []string{"dev/", "proc/", "sys/", "run/", "tmp/", "var/tmp/",
		"var/cache/apt/", "var/lib/apt/lists/", "var/log/",
		"var/cache/ldconfig/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/",
		"usr/share/linda/", "usr/share/locale/", "usr/share/bug/", "usr/share/doc-base/"} {
		if strings.HasPrefix(rel, p) {
			// The directories themselves (e.g. var/cache/apt/archives) stay, empty, so
			// that apt and friends find them; run/ and tmp/ stay as mount points.
			return !isDir || p == "dev/" || p == "proc/" || p == "sys/"
		}
	}
	if strings.HasPrefix(rel, "usr/share/doc/") && !isDir && path.Base(rel) != "copyright" {
		return true
	}
	if strings.HasSuffix(rel, "-old") && (strings.HasPrefix(rel, "var/lib/dpkg/") || strings.HasPrefix(rel, "var/cache/debconf/") || strings.HasPrefix(rel, "etc/")) {
		return true // dpkg's and debconf's backups: status-old, config.dat-old
	}
	if strings.HasPrefix(rel, "etc/") && strings.HasSuffix(rel, "-") && !isDir {
		return true // /etc/passwd-, /etc/shadow-, /etc/group-, /etc/gshadow-
	}
	return false
}

// walk visits every path under root in lexical order (parents before children), with
// slash-separated paths relative to root. The root itself is not visited.
func walk(root string, fn func(rel string, fi fs.FileInfo) error) error {
	return filepath.Walk(root, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), fi)
	})
}

func statEntry(fi fs.FileInfo, full string) (entry, error) {
	e := entry{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.uid, e.gid = st.Uid, st.Gid
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		l, err := os.Readlink(full)
		if err != nil {
			return e, err
		}
		e.link = l
	}
	if fi.IsDir() {
		e.size, e.mtime = 0, time.Time{} // a directory changes when its contents do
	}
	return e, nil
}

// takeSnapshot records every path under root.
func takeSnapshot(root string) (snapshot, error) {
	s := snapshot{}
	err := walk(root, func(rel string, fi fs.FileInfo) error {
		e, err := statEntry(fi, filepath.Join(root, rel))
		if err != nil {
			return err
		}
		s[rel] = e
		return nil
	})
	return s, err
}

// writeLayer writes root as a gzip'd tar to out. With base == nil every path is
// written; otherwise only paths that are new or changed against base, plus whiteouts
// for paths of base that are gone. It returns the number of entries written.
func writeLayer(root, out string, base snapshot) (n int, err error) {
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(zw)

	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	seen := map[string]bool{}
	err = walk(root, func(rel string, fi fs.FileInfo) error {
		seen[rel] = true
		if excluded(rel, fi.IsDir()) {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		full := filepath.Join(root, rel)
		if base != nil {
			e, err := statEntry(fi, full)
			if err != nil {
				return err
			}
			if old, ok := base[rel]; ok && old == e {
				return nil
			}
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(full); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.ModTime = fi.ModTime().Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st != nil {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		}
		if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			if first, ok := links[id]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[id] = rel
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n++
		if hdr.Typeflag == tar.TypeReg {
			src, err := os.Open(full)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if base != nil {
		// Whiteouts: what base had and the tree no longer has, topmost only.
		var gone []string
		for rel := range base {
			if !seen[rel] && !excluded(rel, base[rel].mode.IsDir()) {
				gone = append(gone, rel)
			}
		}
		sort.Strings(gone)
		var last string
		for _, rel := range gone {
			if last != "" && strings.HasPrefix(rel, last+"/") {
				continue
			}
			last = rel
			dir, name := path.Split(rel)
			if err := tw.WriteHeader(&tar.Header{Name: dir + ".wh." + name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}); err != nil {
				return n, err
			}
			n++
		}
	}
	if err := tw.Close(); err != nil {
		return n, err
	}
	if err := zw.Close(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// file is one file of a layer made from memory rather than from a directory.
type file struct {
	Path  string // absolute path in the image
	Mode  int64  // permission bits (and setuid etc.); with Dir a directory, with Link a symlink
	UID   int
	GID   int
	Dir   bool
	Link  string
	Data  []byte            `json:"-"`
	Xattr map[string]string `json:",omitempty"`
	// DataHash stands for Data in recipe hashes (set by recipeHash).
	DataHash string `json:",omitempty"`
}

// writeFilesLayer writes files (parents first, as given) as a gzip'd tar to w.
func writeFilesLayer(w io.Writer, files []file, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(f.Path, "/"),
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		switch {
		case f.Dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
		}
		if len(f.Xattr) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range f.Xattr {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
