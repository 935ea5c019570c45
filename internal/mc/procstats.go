package mc

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux platform Go supports here; reading
// sysconf(_SC_CLK_TCK) would need cgo.
const clockTicks = 100

// procStats samples this process's CPU and memory use from /proc for the
// comprehensive heartbeat.
type procStats struct {
	mu       sync.Mutex
	lastCPU  float64 // seconds of CPU time
	lastWall time.Time
}

func newProcStats() *procStats {
	p := &procStats{}
	p.lastCPU, _ = processCPUSeconds()
	p.lastWall = time.Now()
	return p
}

// sample returns CPU use since the previous sample, as a percentage of the
// CPUs this process may use (GOMAXPROCS follows the cgroup limit), and
// resident memory as a percentage of the memory limit (cgroup or host).
func (p *procStats) sample() (cpuPercent, memPercent float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if cpu, err := processCPUSeconds(); err == nil {
		if wall := now.Sub(p.lastWall).Seconds(); wall > 0 {
			cpuPercent = clampPercent((cpu - p.lastCPU) / wall / float64(runtime.GOMAXPROCS(0)) * 100)
		}
		p.lastCPU, p.lastWall = cpu, now
	}
	rss, err1 := residentBytes()
	limit, err2 := memoryLimitBytes()
	if err1 == nil && err2 == nil && limit > 0 {
		memPercent = clampPercent(float64(rss) / float64(limit) * 100)
	}
	return cpuPercent, memPercent
}

func clampPercent(v float64) float64 { return min(max(v, 0), 100) }

// processCPUSeconds reads utime+stime from /proc/self/stat.
func processCPUSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, strconv.ErrSyntax
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')' come field 3 (state) onwards; utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, strconv.ErrSyntax
	}
	ut, err := strconv.ParseFloat(f[11], 64)
	if err != nil {
		return 0, err
	}
	st, err := strconv.ParseFloat(f[12], 64)
	if err != nil {
		return 0, err
	}
	return (ut + st) / clockTicks, nil
}

// residentBytes reads VmRSS from /proc/self/status.
func residentBytes() (uint64, error) { return kBField("/proc/self/status", "VmRSS:") }

// memoryLimitBytes is the cgroup v2 memory limit when one is set, else MemTotal.
func memoryLimitBytes() (uint64, error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			if total, err := kBField("/proc/meminfo", "MemTotal:"); err != nil || n < total {
				return n, nil
			}
		}
	}
	return kBField("/proc/meminfo", "MemTotal:")
}

// kBField reads a "Name:   1234 kB" line.
func kBField(path, name string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			n, err := strconv.ParseUint(fs[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return n * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, os.ErrNotExist
}
