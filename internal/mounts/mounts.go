// Package mounts reads the mount table: what the node and its image builder
// mounted beneath their directories, so they can unmount it and prove that
// nothing is left.
package mounts

import (
	"fmt"
	"os"
	"strings"
)

// Under lists the mount points at or beneath any of dirs, in mount order
// (a mount comes after the one it sits on), from /proc/self/mountinfo.
func Under(dirs ...string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, strings.TrimSuffix(d, "/")+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	return out, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
