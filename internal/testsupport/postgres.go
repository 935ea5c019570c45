package testsupport

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian puts the PostgreSQL 15 server binaries.
// POSTGRES_BIN_DIR overrides it.
func PostgresBinDir() string {
	if d := os.Getenv("POSTGRES_BIN_DIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// Postgres is a throwaway PostgreSQL cluster on a loopback port.
type Postgres struct {
	Port     int
	User     string
	Password string
	Database string
	dir      string
	cred     *syscall.Credential
	t        testing.TB
}

// StartPostgres runs initdb in a temporary directory and starts the server.
// The superuser is darktower with a generated password; the database
// dark_tower exists. It stops when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p := &Postgres{
		Port:     FreePort(t),
		User:     "darktower",
		Password: "pg-" + RandomToken(t, 12),
		Database: "dark_tower",
		dir:      t.TempDir(),
		t:        t,
	}
	p.cred = serverCredential(t, p.dir)
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.chown(pwfile)
	p.run("initdb", "-D", p.DataDir(), "-U", p.User, "--pwfile="+pwfile, "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
	_ = os.Remove(pwfile)
	p.Start()
	t.Cleanup(p.Stop)

	conn := p.connect(t, "postgres")
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+p.Database); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return p
}

// DataDir is the cluster's data directory.
func (p *Postgres) DataDir() string { return filepath.Join(p.dir, "data") }

// URL is a DATABASE_URL for the dark_tower database.
func (p *Postgres) URL() string { return p.URLFor(p.User, p.Password, p.Database) }

// URLFor builds a URL with other credentials or database, for fault tests.
func (p *Postgres) URLFor(user, password, database string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, password, p.Port, database)
}

// Addr is host:port.
func (p *Postgres) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

// Start starts the server (again) on the same port and data.
func (p *Postgres) Start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.DataDir(), "-w", "-t", "60", "-l", filepath.Join(p.dir, "postgres.log"), "start",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", p.Port, p.dir))
	if err := WaitTCP(p.Addr(), 30*time.Second); err != nil {
		p.t.Fatalf("postgres: %v\n%s", err, p.Log())
	}
}

// Stop stops the server quickly; it is safe to call twice.
func (p *Postgres) Stop() {
	if _, err := os.Stat(filepath.Join(p.DataDir(), "postmaster.pid")); err != nil {
		return
	}
	cmd := exec.Command(filepath.Join(PostgresBinDir(), "pg_ctl"), "-D", p.DataDir(), "-w", "-m", "fast", "stop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Logf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Log returns the server log.
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
	return string(b)
}

// Exec runs SQL on the dark_tower database as the superuser.
func (p *Postgres) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	conn := p.connect(t, p.Database)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// Conn opens a connection to the dark_tower database, closed at test end.
func (p *Postgres) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	c := p.connect(t, p.Database)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (p *Postgres) connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URLFor(p.User, p.Password, db))
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	return conn
}

func (p *Postgres) run(tool string, args ...string) {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(PostgresBinDir(), tool), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("%s: %v\n%s\n%s", tool, err, out, p.Log())
	}
}

func (p *Postgres) chown(path string) {
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			p.t.Fatal(err)
		}
	}
}

// serverCredential returns the identity a server must run as. PostgreSQL
// refuses to run as root, and CI runs as root: there the server runs as the
// postgres (or nobody) user and dir is handed to it.
func serverCredential(t testing.TB, dir string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("running as root and found no postgres or nobody user to run servers as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// t.TempDir's parent is private to root; let the server user through it.
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}
