// Package stack runs the verifier binary against a real control plane: two
// AC, two GC and two MC processes built from ./cmd, real Postgres and Redis,
// and Prometheus scraping all of them and the exporters.
package stack

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/testsupport"
	"github.com/darktower/devstack/verifier/classify"
	"github.com/darktower/devstack/verifier/e2e/e2eutil"
	"github.com/darktower/devstack/verifier/probe"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

// allChecks is every check of the sections the stack configures: all but
// the cluster ones.
var allChecks = checksExcept("kubernetes.")

// checksExcept lists the check ids, in order, whose section is none of
// prefixes ("prometheus.").
func checksExcept(prefixes ...string) []string {
	var out []string
	for _, id := range probe.IDs() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(id, p) }) {
			out = append(out, id)
		}
	}
	return out
}

// stack is the control plane, two of each service, and Prometheus
// scraping them and the exporters.
type stack struct {
	*testsupport.ControlPlane
	prom *testsupport.Prometheus
}

func startStack(t testing.TB) *stack {
	t.Helper()
	testsupport.Binary(t, "verifier")
	s := &stack{ControlPlane: testsupport.StartControlPlane(t, testsupport.ControlPlaneOptions{Replicas: 2})}
	topo := s.Topo
	rx := testsupport.StartRedisExporter(t, s.Redis)
	px := testsupport.StartPostgresExporter(t, s.Postgres)
	hostport := func(u string) string { return u[len("http://"):] }
	s.prom = testsupport.StartPrometheus(t,
		testsupport.ScrapeJob{Name: "ac-service", Targets: []string{hostport(topo.ACURL(0)), hostport(topo.ACURL(1))}},
		testsupport.ScrapeJob{Name: "global-controller", Targets: []string{hostport(topo.GCHTTPURL(0)), hostport(topo.GCHTTPURL(1))}},
		testsupport.ScrapeJob{Name: "meeting-controller", Targets: []string{hostport(topo.MCHealthURL(0)), hostport(topo.MCHealthURL(1))}},
		testsupport.ScrapeJob{Name: "redis_exporter", Targets: []string{rx.Addr}},
		testsupport.ScrapeJob{Name: "postgres_exporter", Targets: []string{px.Addr}, Interval: 2 * time.Second},
	)
	return s
}

func (s *stack) config(deadline time.Duration, mcIDs ...string) e2eutil.Config {
	if len(mcIDs) == 0 {
		mcIDs = []string{localstack.MCID(0), localstack.MCID(1)}
	}
	jobs := []map[string]any{
		{"name": "ac-service", "min_targets": 2}, {"name": "global-controller", "min_targets": 2},
		{"name": "meeting-controller", "min_targets": 2}, {"name": "redis_exporter"}, {"name": "postgres_exporter"},
	}
	return e2eutil.Base(deadline).
		With("redis", map[string]any{"address": s.Redis.Addr(), "password": e2eutil.Ref("REDIS_PASSWORD")}).
		With("postgres", map[string]any{"url": e2eutil.Ref("DATABASE_URL")}).
		With("ac", map[string]any{"urls": []string{s.Topo.ACURL(0), s.Topo.ACURL(1)}, "client_id": localstack.VerifierClientID,
			"client_secret": e2eutil.Ref("VERIFIER_CLIENT_SECRET")}).
		With("gc", map[string]any{"grpc_addresses": []string{s.Topo.GCGRPCAddr(0), s.Topo.GCGRPCAddr(1)}}).
		With("mc", map[string]any{"expected_count": len(mcIDs), "expected_ids": mcIDs, "region": "local",
			"heartbeat_threshold": "2s", "health_urls": []string{s.Topo.MCHealthURL(0), s.Topo.MCHealthURL(1)}}).
		With("prometheus", map[string]any{"url": s.prom.URL, "jobs": jobs})
}

func (s *stack) env() map[string]string {
	return map[string]string{
		"REDIS_PASSWORD":         s.Redis.Password,
		"DATABASE_URL":           s.Postgres.URL(),
		"VERIFIER_CLIENT_SECRET": s.Topo.Secrets.VerifierClientSecret.Reveal(),
	}
}

func (s *stack) secrets() map[string]string {
	sec := s.Topo.Secrets
	return map[string]string{
		"postgres password": s.Postgres.Password, "redis password": s.Redis.Password,
		"signing key": sec.SigningKey.Reveal(), "verifier client secret": sec.VerifierClientSecret.Reveal(),
		"GC client secret": sec.GCClientSecret.Reveal(), "MC client secret": sec.MCClientSecret.Reveal(),
	}
}

// unauthenticatedGC is a GC build that lost its auth interceptor: it serves
// health and the registry API to anyone. No real GC can be configured that
// way, so the fault is this small stand-in.
type unauthenticatedGC struct {
	internalv1.UnimplementedGlobalControllerServiceServer
}

func (unauthenticatedGC) ListMeetingControllers(context.Context, *internalv1.ListMeetingControllersRequest) (*internalv1.ListMeetingControllersResponse, error) {
	return &internalv1.ListMeetingControllersResponse{}, nil
}

func startUnauthenticatedGC(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	internalv1.RegisterGlobalControllerServiceServer(srv, unauthenticatedGC{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestStackFaults(t *testing.T) {
	s := startStack(t)
	const definite = 30 * time.Second
	const short = 4 * time.Second
	run := func(t *testing.T, cfg e2eutil.Config, env map[string]string, exit int, failing map[string]classify.Class) e2eutil.Result {
		t.Helper()
		r := e2eutil.Run(t, cfg, env, "run", "--output", "json")
		e2eutil.Expect(t, r, exit, failing, allChecks...)
		e2eutil.NoSecrets(t, r, s.secrets())
		t.Logf("%v exit %d: %s", r.Elapsed.Round(time.Millisecond), r.Exit, e2eutil.Statuses(r))
		return r
	}

	t.Run("healthy", func(t *testing.T) {
		r := run(t, s.config(definite), s.env(), 0, nil)
		if ev := r.Check("mc.webtransport").Evidence; ev == "" {
			t.Error("mc.webtransport passed without evidence")
		}
	})
	t.Run("wrong verifier client secret", func(t *testing.T) {
		env := s.env()
		env["VERIFIER_CLIENT_SECRET"] = "not-the-verifier-secret"
		r := run(t, s.config(definite), env, 1, map[string]classify.Class{"ac.token": classify.ACInvalidClient})
		if r.Elapsed > 8*time.Second {
			t.Errorf("invalid_client is definite, yet the run took %v", r.Elapsed)
		}
	})
	t.Run("gc unreachable", func(t *testing.T) {
		closed := "127.0.0.1:" + strconv.Itoa(testsupport.FreePort(t))
		cfg := s.config(short).With("gc", map[string]any{"grpc_addresses": []string{s.Topo.GCGRPCAddr(0), closed}})
		r := run(t, cfg, s.env(), 3, map[string]classify.Class{"gc.health": classify.NetRefused})
		if c := r.Check("gc.health"); c.Class != nil && !contains(c.Class.Cause, closed) {
			t.Errorf("the cause should name the unreachable GC %s: %s", closed, c.Class.Cause)
		}
	})
	t.Run("gc accepting calls without a token", func(t *testing.T) {
		cfg := s.config(definite).With("gc", map[string]any{"grpc_addresses": []string{startUnauthenticatedGC(t)}})
		run(t, cfg, s.env(), 1, map[string]classify.Class{"gc.auth-enforced": classify.GCAuthNotEnforced})
	})
	t.Run("expected mc missing", func(t *testing.T) {
		cfg := s.config(short, localstack.MCID(0), localstack.MCID(1), "mc-local-7")
		r := run(t, cfg, s.env(), 3, map[string]classify.Class{"gc.registration": classify.GCMCMissing})
		if c := r.Check("gc.registration"); !contains(c.Error, "mc-local-7") {
			t.Errorf("the error should name the missing MC: %s", c.Error)
		}
	})
	t.Run("mc heartbeat stale", func(t *testing.T) {
		// A third MC registers, then freezes: alive as a process, silent to GC.
		mc := s.StartMC()
		defer mc.Kill()
		ids := []string{localstack.MCID(0), localstack.MCID(1), localstack.MCID(2)}
		waitRegistry(t, s, localstack.MCID(2), func(c *internalv1.MeetingController) bool {
			return c.Health == internalv1.HealthStatus_HEALTH_STATUS_HEALTHY
		})
		mc.Signal(syscall.SIGSTOP)
		defer mc.Signal(syscall.SIGCONT)
		waitRegistry(t, s, localstack.MCID(2), func(c *internalv1.MeetingController) bool {
			return time.Since(c.GetLastHeartbeatAt().AsTime()) > 2500*time.Millisecond
		})
		r := run(t, s.config(short, ids...), s.env(), 3, map[string]classify.Class{"gc.registration": classify.GCMCStale})
		if c := r.Check("gc.registration"); !contains(c.Error, localstack.MCID(2)) {
			t.Errorf("the error should name the stale MC: %s", c.Error)
		}
	})
}

// waitRegistry polls GC 0 with the verifier's token until MC id satisfies ok.
func waitRegistry(t *testing.T, s *stack, id string, ok func(*internalv1.MeetingController) bool) {
	t.Helper()
	ts := auth.TokenSource(context.Background(), s.Topo.ACURL(0), localstack.VerifierClientID, s.Topo.Secrets.VerifierClientSecret)
	conn, err := grpc.NewClient(s.Topo.GCGRPCAddr(0), grpc.WithTransportCredentials(insecureCreds()), grpc.WithPerRPCCredentials(auth.PerRPC(ts)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := internalv1.NewGlobalControllerServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := client.ListMeetingControllers(ctx, &internalv1.ListMeetingControllersRequest{})
		cancel()
		if err == nil {
			for _, c := range resp.Controllers {
				if c.Id == id && ok(c) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MC %s did not reach the wanted state in 30s (last error %v)", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
