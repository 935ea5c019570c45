package mc_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/mc"
	"github.com/darktower/devstack/internal/testsupport"
)

// checkDrainOrder asserts a DRAINING heartbeat reached GC before DeregisterMC
// and that no heartbeat claimed anything else after it.
func checkDrainOrder(t *testing.T, ev []gcEvent) {
	t.Helper()
	drainingAt, deregAt := -1, -1
	for i, e := range ev {
		switch {
		case (e.kind == "fast" || e.kind == "comprehensive") && e.health == pb.HealthStatus_HEALTH_STATUS_DRAINING:
			if drainingAt < 0 {
				drainingAt = i
			}
		case e.kind == "fast" || e.kind == "comprehensive":
			if drainingAt >= 0 {
				t.Fatalf("heartbeat with health %v after the DRAINING one", e.health)
			}
		case e.kind == "deregister":
			deregAt = i
			if e.reason == "" {
				t.Fatal("DeregisterMC without a reason")
			}
		}
	}
	if drainingAt < 0 || deregAt < 0 || deregAt < drainingAt {
		t.Fatalf("want a DRAINING heartbeat then DeregisterMC; DRAINING at %d, deregister at %d", drainingAt, deregAt)
	}
}

// In-process drain: readiness turns 503 while GC is still being told, new
// meetings are refused, open sessions are closed, and Run returns nil.
func TestDrainInProcess(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	gate := make(chan struct{})
	st.gc.mu.Lock()
	st.gc.deregisterGate = gate
	st.gc.mu.Unlock()
	r := st.startMC(t, "mc-drain-1", func(env map[string]string) { env["MC_MAX_PARTICIPANTS"] = "1" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testsupport.Eventually(t, 5*time.Second, "ready", func() bool { return httpStatus(t, r.healthURL("/health/ready")) == http.StatusOK })
	client := dialMC(t, r)
	gctx := withToken(ctx, st.gcToken(t, r))
	if resp, err := client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "live-1"}); err != nil || !resp.GetAccepted() {
		t.Fatalf("AssignMeeting: %v %v", resp, err)
	}
	cs, err := mc.OpenWebTransport(ctx, r.meetingURL("live-1"), r.srv.CertSHA256())
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var refused *mc.RefusedError
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("live-1"), r.srv.CertSHA256()); !errors.As(err, &refused) || refused.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second session with MC_MAX_PARTICIPANTS=1: %v, want a 503 refusal", err)
	}

	start := time.Now()
	r.cancel()
	testsupport.Eventually(t, 5*time.Second, "DRAINING heartbeat", func() bool {
		for _, e := range st.gc.snapshot() {
			if e.health == pb.HealthStatus_HEALTH_STATUS_DRAINING {
				return true
			}
		}
		return false
	})
	// DeregisterMC is held by GC: MC is draining but still serving.
	if got := httpStatus(t, r.healthURL("/health/ready")); got != http.StatusServiceUnavailable {
		t.Fatalf("ready while draining = %d, want 503", got)
	}
	if got := httpStatus(t, r.healthURL("/health/live")); got != http.StatusOK {
		t.Fatalf("live while draining = %d, want 200", got)
	}
	resp, err := client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "late-1"})
	if err != nil || resp.GetAccepted() || !strings.Contains(resp.GetRejectionReason(), "draining") {
		t.Fatalf("AssignMeeting while draining: %v %v, want rejected (draining)", resp, err)
	}
	if metric(t, r.healthURL("/metrics"), "mc_draining") != 1 {
		t.Fatal("mc_draining is not 1")
	}
	close(gate)

	if err := r.stop(t, r.cfg.ShutdownGrace); err != nil {
		t.Fatalf("Run after drain: %v", err)
	}
	t.Logf("drain took %v", time.Since(start))
	select {
	case <-cs.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("open WebTransport session was not closed by the drain")
	}
	checkDrainOrder(t, st.gc.snapshot())
}

// The real binary: SIGTERM -> DRAINING heartbeat, DeregisterMC, exit 0 within
// MC_SHUTDOWN_GRACE; logs are JSON and carry no secret.
func TestProcessSIGTERM(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	bin := testsupport.Binary(t, "meeting-controller")
	env := st.env(t, "mc-proc-1")
	env["MC_SHUTDOWN_GRACE"] = "5s"
	p := testsupport.StartProcess(t, "meeting-controller", bin, env)
	health := "http://" + env["MC_HEALTH_BIND_ADDRESS"]
	if err := testsupport.WaitHTTP(health+"/health/ready", http.StatusOK, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 5*time.Second, "a heartbeat", func() bool { return st.gc.count("fast") >= 1 })
	reg := st.gc.snapshot()[0].register
	if reg.GetId() != "mc-proc-1" || len(reg.GetWebtransportCertSha256()) != 64 ||
		!strings.Contains(p.Logs(), reg.GetWebtransportCertSha256()) {
		t.Fatalf("registration %v; the cert hash should also be in the logs", reg)
	}
	// A real session against the binary, pinned to the advertised hash.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := st.redis.Client(t).HSet(ctx, "meeting:proc-room", "controller_id", "mc-proc-1", "status", "active").Err(); err != nil {
		t.Fatal(err)
	}
	mt, _, err := st.issuer.Signer.SignMeeting("p-test", "proc-room", "mc-proc-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.DialWebTransport(ctx, env["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"]+"/meetings/proc-room?token="+mt, reg.GetWebtransportCertSha256()); err != nil {
		t.Fatalf("WebTransport to the binary: %v", err)
	}

	start := time.Now()
	p.Signal(syscall.SIGTERM)
	code, err := p.Wait(6 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("exit took %v, more than MC_SHUTDOWN_GRACE", d)
	}
	checkDrainOrder(t, st.gc.snapshot())

	logs := p.Logs()
	for _, s := range secretsOf(st, env) {
		if strings.Contains(logs, s) {
			t.Fatal("a secret appears in the process logs")
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"service":"meeting-controller"`) {
			t.Fatalf("log line is not the service's JSON: %q", line)
		}
	}
	for _, want := range []string{"reported DRAINING to GC", "deregistered from GC", "meeting controller stopped"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("logs lack %q", want)
		}
	}
}
