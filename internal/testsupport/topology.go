package testsupport

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/secret"
)

// Topology wires replicas of each service (AC, GC, MC) to pg and rd on free
// loopback ports, with fresh secrets and AC's clients file written, the way
// local mode wires them.
func Topology(t testing.TB, pg *Postgres, rd *Redis, replicas int, tuning localstack.Tuning) *localstack.Topology {
	t.Helper()
	secrets, err := localstack.NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	topo := &localstack.Topology{
		Host:        "127.0.0.1",
		Region:      "local",
		DatabaseURL: secret.New(pg.URL()),
		RedisURL:    secret.New(rd.URL()),
		ClientsFile: filepath.Join(t.TempDir(), "clients.yaml"),
		Secrets:     secrets,
		Tuning:      tuning,
	}
	for range replicas {
		topo.AC = append(topo.AC, FreePort(t))
		topo.GC = append(topo.GC, localstack.GCPorts{HTTP: FreePort(t), GRPC: FreePort(t)})
		topo.MC = append(topo.MC, localstack.MCPorts{GRPC: FreePort(t), Health: FreePort(t), WebTransport: FreeUDPPort(t)})
	}
	if err := localstack.WriteClientsFile(topo.ClientsFile, secrets); err != nil {
		t.Fatal(err)
	}
	return topo
}

// Migrate runs the real db-migrate against topo's database and fails the
// test unless it exits 0. It returns the process, for its logs.
func Migrate(t testing.TB, topo *localstack.Topology) *Process {
	t.Helper()
	m := StartProcess(t, "db-migrate", Binary(t, "db-migrate"), topo.MigrateEnv())
	if code, err := m.Wait(60 * time.Second); err != nil || code != 0 {
		t.Fatalf("db-migrate: exit %d, %v\n%s", code, err, m.Logs())
	}
	return m
}
