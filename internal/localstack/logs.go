package localstack

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// LogSources maps each process name to its log file.
func (l Layout) LogSources() map[string]string {
	src := map[string]string{}
	files, _ := filepath.Glob(l.Path("logs", "*.log"))
	for _, f := range files {
		src[strings.TrimSuffix(filepath.Base(f), ".log")] = f
	}
	src["postgres"] = l.Path("postgres", "postgres.json")
	// What Postgres says before its logging collector runs (pg_ctl -l).
	src["postgres-start"] = l.Path("postgres", "postgres.log")
	return src
}

var palette = []string{"31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96"}

// followed is one log file being read.
type followed struct {
	f       *os.File
	r       *bufio.Reader
	ino     uint64
	off     int64 // bytes read so far
	partial string
}

// FollowLogs prints the last lines of every process's log, then follows
// them until ctx ends, each line prefixed with its process (coloured when
// colour is true). Files are followed by name: a log that appears later (a
// new process, a new stack after `make clean` and `make up`) is read from
// its start, and one replaced or truncated is read again from its start.
func (l Layout) FollowLogs(ctx context.Context, w io.Writer, last int, follow, colour bool) error {
	open := map[string]*followed{} // by path
	defer func() {
		for _, t := range open {
			t.f.Close()
		}
	}()
	first := true
	for {
		src := l.LogSources()
		names := make([]string, 0, len(src))
		width := 0
		for n := range src {
			names = append(names, n)
			width = max(width, len(n))
		}
		slices.Sort(names)
		for _, n := range names {
			path := src[n]
			prefix := fmt.Sprintf("%-*s | ", width, n)
			if colour {
				h := fnv.New32a()
				h.Write([]byte(n))
				prefix = "\033[" + palette[h.Sum32()%uint32(len(palette))] + "m" + prefix + "\033[0m"
			}
			emit := func(s string) { fmt.Fprintln(w, prefix+s) }
			t := open[path]
			var ino uint64
			fi, err := os.Stat(path)
			if err == nil {
				ino = fi.Sys().(*syscall.Stat_t).Ino
			}
			if t != nil && (err != nil || ino != t.ino || fi.Size() < t.off) {
				t.read(emit) // what the old file got before it went
				t.f.Close()
				delete(open, path)
				t = nil
			}
			if err != nil {
				continue
			}
			if t == nil {
				f, err := os.Open(path)
				if err != nil {
					continue
				}
				t = &followed{f: f, r: bufio.NewReader(f), ino: ino}
				open[path] = t
				if first {
					t.skipToLast(last, emit)
					continue
				}
			}
			t.read(emit)
		}
		if !follow {
			return nil
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// skipToLast emits the last n complete lines of the file.
func (t *followed) skipToLast(n int, emit func(string)) {
	var ring []string
	t.read(func(s string) {
		ring = append(ring, s)
		if len(ring) > n {
			ring = ring[1:]
		}
	})
	for _, s := range ring {
		emit(s)
	}
}

// read emits every complete line that arrived; a partial one waits.
func (t *followed) read(emit func(string)) {
	for {
		line, err := t.r.ReadString('\n')
		t.off += int64(len(line))
		if err != nil {
			t.partial += line
			return
		}
		emit(strings.TrimRight(t.partial+line, "\n"))
		t.partial = ""
	}
}
