package probe

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/config"
)

// freeSpace reads how much room the filesystem holding dir has left (local
// mode: the data directory of a server on this machine). It fails with
// local.disk-full below config.MinFreeBytes or without a free inode, since
// the server's next write there fails. With dir "" (not configured) it
// reports nothing.
func freeSpace(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", classify.FailVars(classify.LocalUnreadable, map[string]string{"path": dir}, "free space of %s: %v", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	obs := fmt.Sprintf("%s: %s free of %s", dir, bytesIEC(free), bytesIEC(st.Blocks*uint64(st.Bsize)))
	vars := map[string]string{"dir": dir}
	switch {
	case free < config.MinFreeBytes:
		return obs, classify.FailVars(classify.LocalDiskFull, vars, "the filesystem holding %s has %s free (less than %s): the server's writes there fail",
			dir, bytesIEC(free), bytesIEC(config.MinFreeBytes))
	case st.Files > 0 && st.Ffree == 0:
		return obs, classify.FailVars(classify.LocalDiskFull, vars, "the filesystem holding %s has no free inodes: the server cannot create files there", dir)
	}
	return obs, nil
}

// bytesIEC renders n as 1.5 GiB, 12 MiB, 300 KiB or 17 B.
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// readTail reads up to the last limit bytes of the file at path.
func readTail(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(st.Size()-limit, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	return string(b), err
}

// joinObs joins pieces of evidence, leaving out empty ones.
func joinObs(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
