package localstack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	return src
}

var palette = []string{"31", "32", "33", "34", "35", "36", "91", "92", "93", "94", "95", "96"}

// FollowLogs prints the last lines of every process's log, then follows
// them until ctx ends, each line prefixed with its process (coloured when
// colour is true).
func (l Layout) FollowLogs(ctx context.Context, w io.Writer, last int, follow, colour bool) error {
	src := l.LogSources()
	names := make([]string, 0, len(src))
	width := 0
	for n := range src {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	lines := make(chan string, 256)
	done := make(chan struct{})
	go func() {
		for line := range lines {
			fmt.Fprintln(w, line)
		}
		close(done)
	}()
	finished := make(chan struct{}, len(names))
	for i, n := range names {
		prefix := fmt.Sprintf("%-*s | ", width, n)
		if colour {
			prefix = "\033[" + palette[i%len(palette)] + "m" + prefix + "\033[0m"
		}
		go func() {
			tailFile(ctx, src[n], last, follow, func(s string) { lines <- prefix + s })
			finished <- struct{}{}
		}()
	}
	for range names {
		<-finished
	}
	close(lines)
	<-done
	return nil
}

// tailFile emits the last n lines of path, then new lines as they arrive.
func tailFile(ctx context.Context, path string, n int, follow bool, emit func(string)) {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			if !follow {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var ring []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		ring = append(ring, strings.TrimRight(line, "\n"))
		if len(ring) > n {
			ring = ring[1:]
		}
	}
	for _, l := range ring {
		emit(l)
	}
	if !follow {
		return
	}
	var partial string
	for {
		line, err := r.ReadString('\n')
		if err == nil {
			emit(strings.TrimRight(partial+line, "\n"))
			partial = ""
			continue
		}
		partial += line
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
