package testsupport

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/localstack"
)

// TestTuning is the control plane's timers in tests: short enough for a
// test, long enough for a loaded 2-core machine. GC marks an MC unhealthy 3 s
// after its last heartbeat.
var TestTuning = localstack.Tuning{
	StalenessThresholdSeconds: 3,
	StalenessCheckInterval:    500 * time.Millisecond,
	FastHeartbeatInterval:     500 * time.Millisecond,
	ComprehensiveHeartbeat:    1500 * time.Millisecond,
	MCShutdownGrace:           5 * time.Second,
}

// ControlPlaneOptions shape StartControlPlane's stack.
type ControlPlaneOptions struct {
	Replicas int                // of each of AC, GC and MC; 0 means 1
	Tuning   *localstack.Tuning // nil means TestTuning
	// Env, when set, adjusts a process's environment before it starts
	// (binary is "ac-service", "global-controller" or "meeting-controller").
	Env func(binary string, i int, env map[string]string)
}

// ControlPlane is AC, GC and MC replicas running as real processes against a
// real Postgres (migrated by the real db-migrate) and Redis, wired the way
// local mode wires them.
type ControlPlane struct {
	Topo     *localstack.Topology
	Postgres *Postgres
	Redis    *Redis
	AC, GC   []*Process
	MC       []*Process
	Procs    []*Process // every process started, db-migrate first, for log scans
	t        testing.TB
	opts     ControlPlaneOptions
}

// StartControlPlane starts the stack and waits until every service is ready.
// Everything stops when the test ends.
func StartControlPlane(t testing.TB, o ControlPlaneOptions) *ControlPlane {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Tuning == nil {
		o.Tuning = &TestTuning
	}
	// Build first, one binary after the other: the machine has 2 cores.
	for _, b := range []string{"db-migrate", "ac-service", "global-controller", "meeting-controller"} {
		Binary(t, b)
	}
	pg, rd := StartPostgres(t), StartRedis(t)
	c := &ControlPlane{Postgres: pg, Redis: rd, t: t, opts: o}
	c.Topo = Topology(t, pg, rd, o.Replicas, *o.Tuning)
	c.Procs = append(c.Procs, Migrate(t, c.Topo))
	for i := range c.Topo.AC {
		c.AC = append(c.AC, c.start("ac", "ac-service", i, c.Topo.ACEnv(i)))
	}
	for i := range c.Topo.GC {
		c.GC = append(c.GC, c.start("gc", "global-controller", i, c.Topo.GCEnv(i)))
	}
	for i := range c.Topo.MC {
		c.MC = append(c.MC, c.start("mc", "meeting-controller", i, c.Topo.MCEnv(i)))
	}
	for i, p := range c.AC {
		WaitReady(t, c.Topo.ACURL(i)+"/ready", p)
	}
	for i, p := range c.GC {
		WaitReady(t, c.Topo.GCHTTPURL(i)+"/ready", p)
	}
	for i, p := range c.MC {
		WaitReady(t, c.Topo.MCHealthURL(i)+"/health/ready", p)
	}
	return c
}

// StartMC starts one more MC with the next free ports (the topology grows by
// one) and waits until it is ready.
func (c *ControlPlane) StartMC() *Process {
	c.t.Helper()
	i := len(c.Topo.MC)
	c.Topo.MC = append(c.Topo.MC, localstack.MCPorts{GRPC: FreePort(c.t), Health: FreePort(c.t), WebTransport: FreeUDPPort(c.t)})
	p := c.start("mc", "meeting-controller", i, c.Topo.MCEnv(i))
	c.MC = append(c.MC, p)
	WaitReady(c.t, c.Topo.MCHealthURL(i)+"/health/ready", p)
	return p
}

func (c *ControlPlane) start(short, binary string, i int, env map[string]string) *Process {
	if c.opts.Env != nil {
		c.opts.Env(binary, i, env)
	}
	p := StartProcess(c.t, fmt.Sprintf("%s-%d", short, i), Binary(c.t, binary), env)
	c.Procs = append(c.Procs, p)
	return p
}

// WaitReady waits up to a minute for url to answer 200 and fails the test
// with p's logs otherwise.
func WaitReady(t testing.TB, url string, p *Process) {
	t.Helper()
	if err := WaitHTTP(url, http.StatusOK, 60*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Logs())
	}
}
