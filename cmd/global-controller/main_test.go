package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/darktower/devstack/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.Main(m) }

const dbPassword = "pg-password-must-not-leak"

// baseEnv is a complete, valid configuration. Postgres is deliberately not
// running at DATABASE_URL: GC must start anyway.
func baseEnv(t *testing.T) map[string]string {
	iss := testsupport.NewIssuer(t)
	return map[string]string{
		"BIND_ADDRESS":         fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t)),
		"GC_GRPC_BIND_ADDRESS": fmt.Sprintf("127.0.0.1:%d", testsupport.FreePort(t)),
		"DATABASE_URL":         fmt.Sprintf("postgres://darktower:%s@127.0.0.1:%d/dark_tower?sslmode=disable", dbPassword, testsupport.FreePort(t)),
		"AC_INTERNAL_URL":      "http://127.0.0.1:1",
		"AC_JWKS_URL":          iss.JWKSURL,
		"GC_CLIENT_ID":         "global-controller",
		"GC_CLIENT_SECRET":     "client-secret-must-not-leak",
		"GC_REGION":            "local",
		"GC_SHUTDOWN_GRACE":    "3s",
	}
}

// TestConfigErrors: each missing or malformed variable stops GC with exit
// code 2 and one line naming the variable; secrets never appear.
func TestConfigErrors(t *testing.T) {
	bin := testsupport.Binary(t, "global-controller")
	base := baseEnv(t)
	cases := []struct{ name, value string }{
		{"DATABASE_URL", ""},
		{"AC_INTERNAL_URL", ""},
		{"AC_JWKS_URL", ""},
		{"GC_CLIENT_ID", ""},
		{"GC_CLIENT_SECRET", ""},
		{"GC_REGION", ""},
		{"DATABASE_URL", "mysql://u:" + dbPassword + "@db:3306/x"},
		{"DATABASE_URL", "just-" + dbPassword},
		{"AC_INTERNAL_URL", "ftp://ac:8082"},
		{"AC_JWKS_URL", "not a url"},
		{"GC_REGION", strings.Repeat("r", 51)},
		{"BIND_ADDRESS", "8080"},
		{"GC_GRPC_BIND_ADDRESS", "0.0.0.0:99999"},
		{"MC_STALENESS_THRESHOLD_SECONDS", "0"},
		{"MC_STALENESS_THRESHOLD_SECONDS", "30s"},
		{"GC_STALENESS_CHECK_INTERVAL", "5"},
		{"GC_UNHEALTHY_RETENTION", "-1h"},
		{"GC_FAST_HEARTBEAT_INTERVAL", "soon"},
		{"GC_COMPREHENSIVE_HEARTBEAT_INTERVAL", "0s"},
		{"GC_JOIN_BURST", "0"},
		{"GC_JOIN_INTERVAL", "fast"},
		{"GC_JOIN_MAX_CALLERS", "99999999"},
	}
	for _, c := range cases {
		env := maps.Clone(base)
		if c.value == "" {
			delete(env, c.name)
		} else {
			env[c.name] = c.value
		}
		p := testsupport.StartProcess(t, "global-controller", bin, env)
		code, err := p.Wait(10 * time.Second)
		if err != nil {
			t.Fatalf("%s=%q: %v", c.name, c.value, err)
		}
		out := strings.TrimSpace(p.Logs())
		if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, c.name) {
			t.Errorf("%s=%q: exit %d, output %q; want exit 2 and one line naming %s", c.name, c.value, code, out, c.name)
		}
		if strings.Contains(out, dbPassword) || strings.Contains(out, "must-not-leak") {
			t.Errorf("%s=%q: output leaks a secret: %q", c.name, c.value, out)
		}
	}
}

// TestStartsWithoutPostgres: GC serves /health and gRPC health while its
// database is down, /ready says 503, and SIGTERM stops it cleanly.
func TestStartsWithoutPostgres(t *testing.T) {
	env := baseEnv(t)
	p := testsupport.StartProcess(t, "global-controller", testsupport.Binary(t, "global-controller"), env)
	base := "http://" + env["BIND_ADDRESS"]
	if err := testsupport.WaitHTTP(base+"/health", 200, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := testsupport.WaitHTTP(base+"/ready", 503, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(env["GC_GRPC_BIND_ADDRESS"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health = %v, %v", r, err)
	}
	p.Signal(syscall.SIGTERM)
	code, err := p.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v", code, err)
	}
	logs := p.Logs()
	if strings.Contains(logs, dbPassword) || strings.Contains(logs, "must-not-leak") {
		t.Fatalf("logs leak a secret:\n%s", logs)
	}
	if !strings.Contains(logs, `"service":"global-controller"`) || !strings.Contains(logs, "global controller stopped") {
		t.Fatalf("logs lack the service tag or the stop line:\n%s", logs)
	}
}
