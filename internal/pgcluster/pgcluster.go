// Package pgcluster creates, starts and stops a PostgreSQL cluster in a
// directory with the server binaries (PostgreSQL 15 on Debian). PostgreSQL
// refuses to run as root, and CI and Debian laptops often are root: then the
// cluster belongs to, and runs as, the postgres (or nobody) user.
package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/darktower/devstack/internal/procs"
)

// BinDir is where the server binaries are: POSTGRES_BIN_DIR, or Debian's
// PostgreSQL 15 directory.
func BinDir() string {
	if d := os.Getenv("POSTGRES_BIN_DIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// Cluster is a data directory plus where its server listens.
type Cluster struct {
	Dir       string // holds data/, the socket and the log
	Port      int
	Superuser string
	cred      *syscall.Credential
}

// New prepares a cluster in dir, handing dir to an unprivileged user when
// running as root.
func New(dir string, port int, superuser string) (*Cluster, error) {
	c := &Cluster{Dir: dir, Port: port, Superuser: superuser}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	c.cred = cred
	if cred != nil {
		if err := c.chownTree(dir); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// LogFile is the server log.
func (c *Cluster) LogFile() string { return filepath.Join(c.Dir, "postgres.log") }

// Initialized reports whether initdb has run.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION"))
	return err == nil
}

// Init runs initdb with scram-sha-256 auth and the superuser's password,
// passed through a file that is removed afterwards (never an argument).
func (c *Cluster) Init(password string, fast bool) error {
	if c.cred != nil {
		// The server user must reach Dir through its parents: search
		// permission for others, added once here and only where missing.
		for d := filepath.Dir(c.Dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
					return fmt.Errorf("letting the server user reach %s: %w", c.Dir, err)
				}
			}
		}
	}
	pwfile := filepath.Join(c.Dir, ".pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := c.chown(pwfile); err != nil {
		return err
	}
	args := []string{"-D", c.DataDir(), "-U", c.Superuser, "--pwfile=" + pwfile, "-A", "scram-sha-256", "-E", "UTF8"}
	if fast {
		args = append(args, "--no-sync")
	}
	return c.run("initdb", args...)
}

// Start starts the server on 127.0.0.1 and waits until it accepts connections.
// Extra server settings (-c name=value) come from settings.
func (c *Cluster) Start(settings ...string) error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", c.Port, c.Dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	return c.run("pg_ctl", "-D", c.DataDir(), "-w", "-t", "60", "-l", c.LogFile(), "start", "-o", opts)
}

// Running reports whether a postmaster holds the data directory.
func (c *Cluster) Running() bool {
	// pg_ctl counts a killed postmaster that its parent has not collected
	// yet (a zombie) as running.
	if pid := c.PID(); pid > 0 && !procs.Alive(pid) {
		return false
	}
	return c.run("pg_ctl", "-D", c.DataDir(), "status") == nil
}

// Stop stops the server with the fast mode; a stopped server is not an error.
func (c *Cluster) Stop() error {
	if _, err := os.Stat(filepath.Join(c.DataDir(), "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return c.run("pg_ctl", "-D", c.DataDir(), "-w", "-m", "fast", "stop")
}

// PID is the postmaster's process id, 0 when not running.
func (c *Cluster) PID() int {
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// Log returns the server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.LogFile())
	return string(b)
}

func (c *Cluster) run(tool string, args ...string) error {
	cmd := exec.Command(filepath.Join(BinDir(), tool), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setsid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func (c *Cluster) chownTree(dir string) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return c.chown(p)
	})
}

func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}
