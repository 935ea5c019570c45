package localstack

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/darktower/devstack/internal/pgcluster"
)

// Program is an outside program local mode runs.
type Program struct {
	Name   string // what the user would call it
	Path   string // absolute path, or a name looked up in PATH
	Debian string // the Debian package that ships it
	Other  string // how to get it elsewhere
}

// Programs lists what local mode needs besides our own binaries.
func Programs() []Program {
	pg := pgcluster.BinDir()
	const pgOther = "install PostgreSQL 15 server binaries and set POSTGRES_BIN_DIR to their directory"
	return []Program{
		{"initdb", filepath.Join(pg, "initdb"), "postgresql-15", pgOther},
		{"pg_ctl", filepath.Join(pg, "pg_ctl"), "postgresql-15", pgOther},
		{"postgres", filepath.Join(pg, "postgres"), "postgresql-15", pgOther},
		{"redis-server", "redis-server", "redis-server", "install Redis 7 (macOS: brew install redis)"},
		{"prometheus", "prometheus", "prometheus", "install Prometheus 2.x (macOS: brew install prometheus)"},
		{"redis_exporter", "prometheus-redis-exporter", "prometheus-redis-exporter", "install oliver006/redis_exporter as prometheus-redis-exporter on PATH"},
		{"postgres_exporter", "prometheus-postgres-exporter", "prometheus-postgres-exporter", "install prometheus-community/postgres_exporter as prometheus-postgres-exporter on PATH"},
	}
}

// Resolve returns the program's absolute path, or "" when it is missing.
func (p Program) Resolve() string {
	if filepath.IsAbs(p.Path) {
		if fi, err := os.Stat(p.Path); err == nil && fi.Mode()&0o111 != 0 {
			return p.Path
		}
		return ""
	}
	path, err := exec.LookPath(p.Path)
	if err != nil {
		return ""
	}
	return path
}

// EnsurePrograms installs missing programs with apt-get on Debian or Ubuntu
// as root; elsewhere it returns an error with one line per missing program.
func EnsurePrograms(out io.Writer) error {
	var missing []Program
	for _, p := range Programs() {
		if p.Resolve() == "" {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, debianErr := os.Stat("/etc/debian_version")
	if debianErr == nil && os.Geteuid() == 0 {
		pkgs := map[string]bool{}
		var list []string
		for _, p := range missing {
			if !pkgs[p.Debian] {
				pkgs[p.Debian] = true
				list = append(list, p.Debian)
			}
		}
		fmt.Fprintf(out, "installing %s with apt-get\n", strings.Join(list, " "))
		for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, list...)} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("apt-get %s: %w", args[0], err)
			}
		}
		return nil
	}
	var b strings.Builder
	for _, p := range missing {
		how := p.Other
		if debianErr == nil {
			how = "run as root: apt-get install " + p.Debian
		}
		fmt.Fprintf(&b, "missing %s: %s\n", p.Name, how)
	}
	return fmt.Errorf("%s", strings.TrimSuffix(b.String(), "\n"))
}
