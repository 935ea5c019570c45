package mc_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/testsupport"
)

// MC started while GC is down keeps retrying, registers once GC is up, then
// heartbeats at the intervals GC returned; NOT_FOUND and a GC restart that
// lost its state both lead to a new registration.
func TestRegistrationHeartbeatsAndRecovery(t *testing.T) {
	st := newStack(t)
	r := st.startMC(t, "mc-reg-1", nil)
	metrics := r.healthURL("/metrics")

	// GC is not listening yet.
	testsupport.Eventually(t, 10*time.Second, "failed registration attempts counted", func() bool {
		return metric(t, metrics, "mc_gc_registrations_total", "status=error") >= 2
	})
	if got := httpStatus(t, r.healthURL("/health/ready")); got != http.StatusServiceUnavailable {
		t.Fatalf("ready before registration = %d, want 503", got)
	}
	if got := httpStatus(t, r.healthURL("/health/live")); got != http.StatusOK {
		t.Fatalf("live = %d, want 200", got)
	}
	if got := metric(t, metrics, "mc_registered"); got != 0 {
		t.Fatalf("mc_registered before registration = %v", got)
	}

	st.gc.start()
	testsupport.Eventually(t, 10*time.Second, "registration", func() bool { return st.gc.count("register") == 1 })
	reg := st.gc.snapshot()[0].register
	want := &pb.RegisterMCRequest{
		Id: "mc-reg-1", Region: "test-region",
		GrpcEndpoint: r.env["MC_GRPC_ADVERTISE_ADDRESS"], WebtransportEndpoint: r.env["MC_WEBTRANSPORT_ADVERTISE_ADDRESS"],
		MaxMeetings: 100, MaxParticipants: 1000, WebtransportCertSha256: r.srv.CertSHA256(),
	}
	if reg.GetId() != want.Id || reg.GetRegion() != want.Region || reg.GetGrpcEndpoint() != want.GrpcEndpoint ||
		reg.GetWebtransportEndpoint() != want.WebtransportEndpoint || reg.GetMaxMeetings() != want.MaxMeetings ||
		reg.GetMaxParticipants() != want.MaxParticipants || reg.GetWebtransportCertSha256() != want.WebtransportCertSha256 {
		t.Fatalf("RegisterMC = %v, want %v", reg, want)
	}
	if len(reg.GetWebtransportCertSha256()) != 64 {
		t.Fatalf("cert hash %q is not hex SHA-256", reg.GetWebtransportCertSha256())
	}
	testsupport.Eventually(t, 5*time.Second, "readiness 200 after registration", func() bool {
		return httpStatus(t, r.healthURL("/health/ready")) == http.StatusOK
	})

	// GC asked for 100 ms fast and 300 ms comprehensive heartbeats; with the
	// defaults (10 s / 30 s) eight fast ones would take over a minute.
	regAt := st.gc.snapshot()[0].at
	testsupport.Eventually(t, 5*time.Second, "8 fast and 3 comprehensive heartbeats", func() bool {
		return st.gc.count("fast") >= 8 && st.gc.count("comprehensive") >= 3
	})
	var fast, comp, fastFirstSecond int
	var eighth time.Time
	for _, e := range st.gc.snapshot() {
		switch e.kind {
		case "fast":
			fast++
			if fast == 8 {
				eighth = e.at
			}
			if e.at.Sub(regAt) <= time.Second {
				fastFirstSecond++
			}
			if e.health != pb.HealthStatus_HEALTH_STATUS_HEALTHY || e.capacity.GetMaxMeetings() != 100 || e.capacity.GetMaxParticipants() != 1000 {
				t.Fatalf("fast heartbeat health=%v capacity=%v", e.health, e.capacity)
			}
		case "comprehensive":
			comp++
			if e.health != pb.HealthStatus_HEALTH_STATUS_HEALTHY || e.mem <= 0 || e.mem > 100 || e.cpu < 0 || e.cpu > 100 {
				t.Fatalf("comprehensive heartbeat health=%v cpu=%v mem=%v, want HEALTHY and percentages (mem > 0)", e.health, e.cpu, e.mem)
			}
		}
	}
	if d := eighth.Sub(regAt); d > 2500*time.Millisecond {
		t.Fatalf("8th fast heartbeat came %v after registration; GC asked for 100 ms", d)
	}
	if fastFirstSecond > 13 {
		t.Fatalf("%d fast heartbeats in the first second; GC asked for one per 100 ms", fastFirstSecond)
	}
	if metric(t, metrics, "mc_gc_heartbeats_total", "type=fast", "status=ok") < 8 ||
		metric(t, metrics, "mc_gc_heartbeats_total", "type=comprehensive", "status=ok") < 3 ||
		metric(t, metrics, "mc_gc_registrations_total", "status=ok") != 1 || metric(t, metrics, "mc_registered") != 1 {
		t.Fatal("heartbeat/registration metrics do not match what GC saw")
	}

	// GC forgets the controller: the next heartbeat gets NOT_FOUND.
	st.gc.forget()
	testsupport.Eventually(t, 5*time.Second, "re-registration after NOT_FOUND", func() bool { return st.gc.count("register") == 2 })
	if metric(t, metrics, "mc_gc_heartbeats_total", "type=fast", "status=not_found")+
		metric(t, metrics, "mc_gc_heartbeats_total", "type=comprehensive", "status=not_found") < 1 {
		t.Fatal("NOT_FOUND heartbeat not counted")
	}

	// GC goes down: heartbeat errors are counted; it comes back without the
	// row (as after pruning), and MC registers again.
	errsBefore := metric(t, metrics, "mc_gc_heartbeats_total", "type=fast", "status=error")
	st.gc.stop()
	testsupport.Eventually(t, 5*time.Second, "heartbeat errors while GC is down", func() bool {
		return metric(t, metrics, "mc_gc_heartbeats_total", "type=fast", "status=error") >= errsBefore+2
	})
	st.gc.forget()
	st.gc.start()
	testsupport.Eventually(t, 10*time.Second, "registration after GC restart", func() bool { return st.gc.count("register") == 3 })
	testsupport.Eventually(t, 5*time.Second, "heartbeats after GC restart", func() bool {
		ev := st.gc.snapshot()
		return ev[len(ev)-1].kind == "fast" || ev[len(ev)-1].kind == "comprehensive"
	})
	if got := httpStatus(t, r.healthURL("/health/ready")); got != http.StatusOK {
		t.Fatalf("ready after GC restart = %d", got)
	}
	if err := r.stop(t, 10*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A token GC refuses (UNAUTHENTICATED) is dropped and a new one fetched,
// rather than retried from the cache until it expires.
func TestRenewsRefusedToken(t *testing.T) {
	st := newStack(t)
	st.bogusTokens.Store(2)
	st.gc.start()
	r := st.startMC(t, "mc-token-1", nil)
	testsupport.Eventually(t, 10*time.Second, "registration with a fresh token", func() bool { return st.gc.count("register") == 1 })
	if n := metric(t, r.healthURL("/metrics"), "mc_gc_registrations_total", "status=error"); n != 2 {
		t.Fatalf("%v failed registrations, want 2 (one per bogus token)", n)
	}
}

// An MC that cannot check GC's calls yet (AC's keys have not arrived) does
// not register, so GC places no meeting it would refuse, and is not ready;
// once the keys come it registers.
func TestRegistersOnlyWithACKeys(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	var serve atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serve.Load() {
			http.Error(w, "AC not up yet", http.StatusServiceUnavailable)
			return
		}
		resp, err := http.Get(st.issuer.JWKSURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(jwks.Close)
	r := st.startMC(t, "mc-keys-1", func(env map[string]string) { env["AC_JWKS_URL"] = jwks.URL })

	testsupport.Eventually(t, 10*time.Second, "MC says why it does not register", func() bool {
		return strings.Contains(r.logs.String(), "not registering with GC yet")
	})
	if n := st.gc.count("register"); n != 0 {
		t.Fatalf("MC registered %d times without AC's keys", n)
	}
	if got := httpStatus(t, r.healthURL("/health/ready")); got != http.StatusServiceUnavailable {
		t.Fatalf("ready without AC's keys = %d, want 503", got)
	}

	serve.Store(true)
	// The refresh of an empty key set is rate limited to one per 5 s.
	testsupport.Eventually(t, 15*time.Second, "registration once the keys arrived", func() bool { return st.gc.count("register") == 1 })
	testsupport.Eventually(t, 5*time.Second, "ready with keys and registered", func() bool {
		return httpStatus(t, r.healthURL("/health/ready")) == http.StatusOK
	})
}
