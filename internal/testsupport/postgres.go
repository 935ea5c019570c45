package testsupport

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/darktower/devstack/internal/pgcluster"
)

// Postgres is a throwaway PostgreSQL cluster on a loopback port.
type Postgres struct {
	Port     int
	User     string
	Password string
	Database string
	cluster  *pgcluster.Cluster
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
		t:        t,
	}
	c, err := pgcluster.New(t.TempDir(), p.Port, p.User)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	p.cluster = c
	if err := c.Init(p.Password, true); err != nil {
		t.Fatalf("postgres: %v", err)
	}
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
func (p *Postgres) DataDir() string { return p.cluster.DataDir() }

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
	if err := p.cluster.Start("fsync=off", "full_page_writes=off"); err != nil {
		p.t.Fatalf("postgres: %v\n%s", err, p.Log())
	}
	if err := WaitTCP(p.Addr(), 30*time.Second); err != nil {
		p.t.Fatalf("postgres: %v\n%s", err, p.Log())
	}
}

// Stop stops the server quickly; it is safe to call twice.
func (p *Postgres) Stop() {
	if err := p.cluster.Stop(); err != nil {
		p.t.Logf("postgres stop: %v", err)
	}
}

// Log returns the server log.
func (p *Postgres) Log() string { return p.cluster.Log() }

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
