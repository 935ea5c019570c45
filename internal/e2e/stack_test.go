package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/localstack"
	"github.com/darktower/devstack/internal/mc"
	"github.com/darktower/devstack/internal/testsupport"
)

func withBearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func byID(cs []*internalv1.MeetingController) map[string]*internalv1.MeetingController {
	m := map[string]*internalv1.MeetingController{}
	for _, c := range cs {
		m[c.Id] = c
	}
	return m
}

// allHealthy checks that GC replica gc lists every MC in ids as HEALTHY with a
// heartbeat newer than since.
func (s *stack) allHealthy(ctx context.Context, gc int, since time.Time, ids ...string) error {
	cs, err := s.list(ctx, gc)
	if err != nil {
		return err
	}
	m := byID(cs)
	for _, id := range ids {
		c, ok := m[id]
		switch {
		case !ok:
			return fmt.Errorf("GC %d does not list %s (has %d)", gc, id, len(cs))
		case c.Health != internalv1.HealthStatus_HEALTH_STATUS_HEALTHY:
			return fmt.Errorf("GC %d lists %s as %v", gc, id, c.Health)
		case !c.LastHeartbeatAt.AsTime().After(since):
			return fmt.Errorf("GC %d: %s last heartbeat %v is not after %v", gc, id, c.LastHeartbeatAt.AsTime(), since)
		}
	}
	return nil
}

// TestControlPlane runs one stack through the scenarios in order;
// the destructive ones come last.
func TestControlPlane(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	ids := []string{localstack.MCID(0), localstack.MCID(1)}
	beat := tuning.FastHeartbeatInterval

	t.Run("both MCs healthy within two heartbeats, listed by either GC", func(t *testing.T) {
		registered := time.Now() // every MC's /health/ready said registered before this
		// Two heartbeat intervals, plus one second for scheduling on a loaded 2-core machine.
		for gc := range s.GC {
			testsupport.Eventually(t, 2*beat+time.Second, fmt.Sprintf("GC %d lists both MCs HEALTHY", gc), func() error {
				return s.allHealthy(ctx, gc, registered.Add(-2*beat), ids...)
			})
		}
		cs, err := s.list(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 {
			t.Fatalf("registry has %d controllers, want exactly 2", len(cs))
		}
		for i, id := range ids {
			c := byID(cs)[id]
			wantGRPC := fmt.Sprintf("http://127.0.0.1:%d", s.Topo.MC[i].GRPC)
			wantWT := fmt.Sprintf("https://127.0.0.1:%d", s.Topo.MC[i].WebTransport)
			if c.GrpcEndpoint != wantGRPC || c.WebtransportEndpoint != wantWT || len(c.WebtransportCertSha256) != 64 || c.Region != "local" {
				t.Errorf("%s registered as %+v", id, c)
			}
		}
	})

	t.Run("auth", func(t *testing.T) {
		gc := s.gcAPI[0]
		reg := &internalv1.RegisterMCRequest{Id: "intruder", Region: "local", GrpcEndpoint: "http://10.0.0.9:50052",
			WebtransportEndpoint: "https://10.0.0.9:4433", MaxMeetings: 1, MaxParticipants: 1}
		expectCode := func(what string, ctx context.Context, want codes.Code) {
			t.Helper()
			_, err := gc.RegisterMC(ctx, reg)
			if status.Code(err) != want {
				t.Errorf("%s: RegisterMC = %v, want %v", what, err, want)
			}
		}
		expectCode("no token", ctx, codes.Unauthenticated)
		verifierTok := s.verifierTok[0]
		expectCode("verifier token", withBearer(ctx, verifierTok), codes.PermissionDenied)

		// An expired token signed with AC's real key, and a fresh one signed by a key AC never had.
		signer := realSigner(t, s.Topo.Secrets.SigningKey.Reveal())
		expired, _, _ := signer.Sign(localstack.MCClientID, auth.ScopeWriteGC, auth.ServiceMeetingController, -time.Minute)
		expectCode("expired token", withBearer(ctx, expired), codes.Unauthenticated)
		rogue := testsupport.NewIssuer(t).Signer
		forged, _, _ := rogue.Sign(localstack.MCClientID, auth.ScopeWriteGC, auth.ServiceMeetingController, time.Hour)
		expectCode("token from an unknown key", withBearer(ctx, forged), codes.Unauthenticated)

		// GC 0 trusts AC 0's JWKS; a token from AC 1 must work there, and the reverse.
		for _, pair := range [][2]int{{1, 0}, {0, 1}} {
			tok := s.verifierTok[pair[0]]
			if _, err := s.gcAPI[pair[1]].ListMeetingControllers(withBearer(ctx, tok), &internalv1.ListMeetingControllersRequest{}); err != nil {
				t.Errorf("token from AC %d on GC %d: %v", pair[0], pair[1], err)
			}
		}
		// The GC's own scope does not open the registry list.
		gcTok := s.token(0, localstack.GCClientID, s.Topo.Secrets.GCClientSecret)
		if _, err := gc.ListMeetingControllers(withBearer(ctx, gcTok), &internalv1.ListMeetingControllersRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("GC token listing controllers = %v, want PermissionDenied", err)
		}
		// Issue 11 item 3: a join needs AC's token with scope meeting.join.
		forgedJoin, _, _ := rogue.Sign(localstack.WebClientID, auth.ScopeMeetingJoin, auth.ServiceWebClient, time.Hour)
		for _, c := range []struct {
			what, token string
			want        int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"web-client token from an unknown key", forgedJoin, http.StatusUnauthorized},
			{"verifier token", verifierTok, http.StatusForbidden},
			{"GC token", gcTok, http.StatusForbidden},
		} {
			resp, err := request(http.MethodPost, s.Topo.GCHTTPURL(0)+"/api/v1/meetings/auth-check/join", c.token)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("join with %s = %d (WWW-Authenticate %q), want %d with a Bearer challenge", c.what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), c.want)
			}
		}
		// Health needs no token.
		conn := healthpb.NewHealthClient(grpcConn(t, s.Topo.GCGRPCAddr(0)))
		if r, err := conn.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("grpc health without token = %v, %v", r, err)
		}
		// The HTTP list endpoint enforces the same rule.
		if code, err := httpGetJSON(s.Topo.GCHTTPURL(1)+"/api/v1/meeting-controllers", "", nil); err != nil || code != http.StatusUnauthorized {
			t.Errorf("HTTP list without token = %d, %v", code, err)
		}
		if code, err := httpGetJSON(s.Topo.GCHTTPURL(1)+"/api/v1/meeting-controllers", verifierTok, nil); err != nil || code != http.StatusOK {
			t.Errorf("HTTP list with verifier token = %d, %v", code, err)
		}
	})

	t.Run("join assigns, stores and opens a pinned WebTransport session", func(t *testing.T) {
		const code = "standup-42"
		var join struct {
			MeetingID         string `json:"meeting_id"`
			ControllerID      string `json:"controller_id"`
			WebTransportURL   string `json:"webtransport_url"`
			WebTransportCert  string `json:"webtransport_cert_sha256"`
			WebTransportEndpt string `json:"webtransport_endpoint"`
			MeetingToken      string `json:"meeting_token"`
		}
		status, err := postJSON(s.Topo.GCHTTPURL(0)+"/api/v1/meetings/"+code+"/join", s.joinTok, &join)
		if err != nil || status != http.StatusOK {
			t.Fatalf("join = %d, %v", status, err)
		}
		if join.MeetingID != code || (join.ControllerID != ids[0] && join.ControllerID != ids[1]) {
			t.Fatalf("join answer %+v", join)
		}
		var assigned string
		row := s.Postgres.Conn(t).QueryRow(ctx, "SELECT controller_id FROM meeting_assignments WHERE meeting_id = $1 AND ended_at IS NULL", code)
		if err := row.Scan(&assigned); err != nil || assigned != join.ControllerID {
			t.Fatalf("assignment row: %q, %v (want %s)", assigned, err, join.ControllerID)
		}
		state, err := s.Redis.Client(t).HGetAll(ctx, "meeting:"+code).Result()
		if err != nil || state["controller_id"] != join.ControllerID {
			t.Fatalf("redis meeting:%s = %v, %v", code, state, err)
		}
		// A second join through the other GC lands on the same MC.
		var again struct {
			ControllerID string `json:"controller_id"`
		}
		if status, err := postJSON(s.Topo.GCHTTPURL(1)+"/api/v1/meetings/"+code+"/join", s.joinTok, &again); err != nil || status != http.StatusOK || again.ControllerID != join.ControllerID {
			t.Fatalf("second join = %d %+v, %v", status, again, err)
		}

		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		welcome, err := mc.DialWebTransport(dctx, join.WebTransportURL, join.WebTransportCert)
		if err != nil {
			t.Fatalf("WebTransport session to %s: %v", join.WebTransportURL, err)
		}
		if welcome.MeetingID != code || welcome.ControllerID != join.ControllerID {
			t.Fatalf("welcome = %+v", welcome)
		}
		bare, _, _ := strings.Cut(join.WebTransportURL, "?")
		unknown := strings.TrimSuffix(bare, code) + "no-such-meeting"
		if _, err := mc.DialWebTransport(dctx, unknown, join.WebTransportCert); err == nil {
			t.Fatal("WebTransport session for an unknown meeting was accepted")
		}
		// Issue 11 item 4: without the meeting token, or with this one for
		// another meeting, MC refuses with 401 before anything counts.
		var refused *mc.RefusedError
		if _, err := mc.DialWebTransport(dctx, bare, join.WebTransportCert); !errors.As(err, &refused) || refused.StatusCode != http.StatusUnauthorized {
			t.Fatalf("WebTransport without the meeting token: %v, want a 401 refusal", err)
		}
		if _, err := mc.DialWebTransport(dctx, unknown+"?token="+join.MeetingToken, join.WebTransportCert); !errors.As(err, &refused) || refused.StatusCode != http.StatusUnauthorized {
			t.Fatalf("WebTransport with another meeting's token: %v, want a 401 refusal", err)
		}
		wrongPin := strings.Repeat("0", 64)
		if _, err := mc.DialWebTransport(dctx, join.WebTransportURL, wrongPin); err == nil {
			t.Fatal("WebTransport session with a wrong certificate pin was accepted")
		}
	})

	// Issue 11 item 2: when both GCs placed the same new meeting at once, 2 of
	// 80 ended with GC naming one MC and Redis the other. Postgres now
	// decides the owner first; every meeting must be joinable where GC says.
	t.Run("200 simultaneous first joins over both GCs agree on one MC, in Redis too", func(t *testing.T) {
		const meetings = 100
		type answer struct {
			status int
			err    error
			id     string
			url    string
			cert   string
		}
		answers := make([][2]answer, meetings)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for m := range meetings {
			for g := range 2 {
				wg.Go(func() {
					<-start
					var j struct {
						ControllerID string `json:"controller_id"`
						URL          string `json:"webtransport_url"`
						Cert         string `json:"webtransport_cert_sha256"`
					}
					st, err := postJSON(fmt.Sprintf("%s/api/v1/meetings/race-%03d/join", s.Topo.GCHTTPURL(g), m), s.joinTok, &j)
					answers[m][g] = answer{st, err, j.ControllerID, j.URL, j.Cert}
				})
			}
		}
		close(start)
		wg.Wait()
		rdb := s.Redis.Client(t)
		db := s.Postgres.Conn(t)
		for m := range meetings {
			code := fmt.Sprintf("race-%03d", m)
			a, b := answers[m][0], answers[m][1]
			if a.err != nil || b.err != nil || a.status != http.StatusOK || b.status != http.StatusOK {
				t.Fatalf("%s: joins answered %d %v and %d %v", code, a.status, a.err, b.status, b.err)
			}
			if a.id != b.id {
				t.Errorf("%s: GC 0 named %s, GC 1 named %s", code, a.id, b.id)
				continue
			}
			if owner, err := rdb.HGet(ctx, "meeting:"+code, "controller_id").Result(); err != nil || owner != a.id {
				t.Errorf("%s: GC named %s, Redis says %q (%v)", code, a.id, owner, err)
			}
			var rows int
			var row string
			if err := db.QueryRow(ctx, `SELECT count(*), max(controller_id) FROM meeting_assignments WHERE meeting_id = $1 AND ended_at IS NULL`, code).
				Scan(&rows, &row); err != nil || rows != 1 || row != a.id {
				t.Errorf("%s: %d open assignments naming %q (%v), want one naming %s", code, rows, row, err, a.id)
			}
		}
		if t.Failed() {
			return
		}
		// Joinable at the MC GC names: a WebTransport session opens there.
		for m := 0; m < meetings; m += 10 {
			a := answers[m][0]
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			welcome, err := mc.DialWebTransport(dctx, a.url, a.cert)
			cancel()
			if err != nil || welcome.ControllerID != a.id {
				t.Errorf("race-%03d at %s: %+v, %v", m, a.id, welcome, err)
			}
		}
	})

	// Issue 11 item 3: joins are rate limited per caller.
	t.Run("a caller past its join burst gets 429 with Retry-After while another caller joins", func(t *testing.T) {
		u := s.Topo.GCHTTPURL(1) + "/api/v1/meetings/%s/join"
		var limited *http.Response
		for i := 0; i < 4*joinBurst && limited == nil; i++ {
			// An invalid code is answered at once and counts all the same.
			resp, err := request(http.MethodPost, fmt.Sprintf(u, "bad%20code"), s.joinTok)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusBadRequest:
			case http.StatusTooManyRequests:
				limited = resp
			default:
				t.Fatalf("join %d from web-client = %d, want 400 until it is limited", i, resp.StatusCode)
			}
		}
		if limited == nil {
			t.Fatalf("%d joins in a row from web-client were never limited", 4*joinBurst)
		}
		retry, err := strconv.Atoi(limited.Header.Get("Retry-After"))
		if err != nil || retry < 1 {
			t.Fatalf("429 with Retry-After %q, want whole seconds", limited.Header.Get("Retry-After"))
		}
		// Another caller: a token AC's key signed for another client with meeting.join.
		other, _, _ := realSigner(t, s.Topo.Secrets.SigningKey.Reveal()).Sign("kiosk", auth.ScopeMeetingJoin, auth.ServiceWebClient, time.Hour)
		var j struct {
			ControllerID string `json:"controller_id"`
		}
		if st, err := postJSON(fmt.Sprintf(u, "limited-room"), other, &j); err != nil || st != http.StatusOK || j.ControllerID == "" {
			t.Fatalf("another caller's join while web-client is limited = %d %+v, %v", st, j, err)
		}
		time.Sleep(time.Duration(retry) * time.Second)
		if st, err := postJSON(fmt.Sprintf(u, "limited-room"), s.joinTok, &j); err != nil || st != http.StatusOK {
			t.Fatalf("web-client's join after Retry-After = %d, %v", st, err)
		}
	})

	t.Run("GC restart: MCs regain registration with no manual step", func(t *testing.T) {
		s.GC[0].Signal(syscall.SIGTERM)
		if code, err := s.GC[0].Wait(15 * time.Second); err != nil || code != 0 {
			t.Fatalf("GC 0 on SIGTERM: exit %d, %v", code, err)
		}
		s.GC[0].Start()
		restarted := time.Now()
		testsupport.WaitReady(s.t, s.Topo.GCHTTPURL(0)+"/ready", s.GC[0])
		testsupport.Eventually(t, 15*time.Second, "MCs fresh again after GC restart", func() error {
			return s.allHealthy(ctx, 0, restarted, ids...)
		})
		testsupport.WaitReady(s.t, s.Topo.MCHealthURL(0)+"/health/ready", s.MC[0])
	})

	t.Run("Postgres restart: GC readiness follows, registration resumes", func(t *testing.T) {
		s.Postgres.Stop()
		for gc := range s.GC {
			if err := testsupport.WaitHTTP(s.Topo.GCHTTPURL(gc)+"/ready", http.StatusServiceUnavailable, 15*time.Second); err != nil {
				t.Fatalf("GC %d /ready with Postgres down: %v", gc, err)
			}
		}
		s.Postgres.Start()
		back := time.Now()
		for gc := range s.GC {
			testsupport.WaitReady(s.t, s.Topo.GCHTTPURL(gc)+"/ready", s.GC[gc])
		}
		testsupport.Eventually(t, 20*time.Second, "MCs heartbeating into the restarted database", func() error {
			return s.allHealthy(ctx, 1, back, ids...)
		})
	})

	t.Run("SIGTERM drains an MC out of the healthy set", func(t *testing.T) {
		id := ids[0]
		s.MC[0].Signal(syscall.SIGTERM)
		code, err := s.MC[0].Wait(tuning.MCShutdownGrace + 5*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("MC on SIGTERM: exit %d, %v", code, err)
		}
		if !strings.Contains(strings.ToLower(s.MC[0].Logs()), "draining") {
			t.Errorf("MC logged nothing about draining")
		}
		// GC keeps a deregistered MC as DRAINING until its heartbeat is stale,
		// then the sweeper removes it.
		health := func() (internalv1.HealthStatus, bool, error) {
			cs, err := s.list(ctx, 1)
			if err != nil {
				return 0, false, err
			}
			c, ok := byID(cs)[id]
			if !ok {
				return 0, false, nil
			}
			return c.Health, true, nil
		}
		h, ok, err := health()
		if err != nil || !ok || h != internalv1.HealthStatus_HEALTH_STATUS_DRAINING {
			t.Fatalf("right after the drain GC lists %s as %v (present %v, err %v), want DRAINING", id, h, ok, err)
		}
		testsupport.Eventually(t, time.Duration(tuning.StalenessThresholdSeconds)*time.Second+5*time.Second, id+" removed by the sweeper", func() error {
			h, ok, err := health()
			if err != nil {
				return err
			}
			if ok {
				return fmt.Errorf("%s still listed as %v", id, h)
			}
			return nil
		})
	})

	t.Run("SIGKILL: UNHEALTHY once the staleness threshold passed", func(t *testing.T) {
		id := ids[1]
		threshold := time.Duration(tuning.StalenessThresholdSeconds) * time.Second
		s.MC[1].Kill()
		killed := time.Now()
		var became time.Time
		testsupport.Eventually(t, threshold+10*time.Second, id+" UNHEALTHY", func() error {
			cs, err := s.list(ctx, 0)
			if err != nil {
				return err
			}
			c, ok := byID(cs)[id]
			if !ok {
				return fmt.Errorf("%s vanished instead of turning UNHEALTHY", id)
			}
			if c.Health != internalv1.HealthStatus_HEALTH_STATUS_UNHEALTHY {
				return fmt.Errorf("%s is %v", id, c.Health)
			}
			became = time.Now()
			return nil
		})
		// The last heartbeat came at most one interval before the kill, so
		// GC must not have called it stale earlier than threshold minus that.
		if early := became.Sub(killed); early < threshold-beat-100*time.Millisecond {
			t.Errorf("marked UNHEALTHY %v after the kill, before the %v threshold", early, threshold)
		}
	})
}
