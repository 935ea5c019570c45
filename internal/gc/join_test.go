package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/grpcserver"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/testsupport"
)

// fakeMC is a real MeetingControllerService on a loopback port, behind the
// same auth as the real MC, that records calls and accepts or rejects them.
type fakeMC struct {
	internalv1.UnimplementedMeetingControllerServiceServer
	id, endpoint string
	accept       bool
	hold         chan struct{} // when set, AssignMeeting waits for it to close (a slow MC)

	mu       sync.Mutex
	calls    []assignCall
	lastAuth []string // what GC presented: a captured token, for the replay test
}

type assignCall struct {
	meetingID, gcID, caller, serviceType string
}

func (f *fakeMC) AssignMeeting(ctx context.Context, r *internalv1.AssignMeetingRequest) (*internalv1.AssignMeetingResponse, error) {
	c, _ := auth.ClaimsFrom(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.calls = append(f.calls, assignCall{r.MeetingId, r.RequestingGcId, c.Subject, c.ServiceType})
	f.lastAuth = md.Get("authorization")
	f.mu.Unlock()
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !f.accept {
		return &internalv1.AssignMeetingResponse{Accepted: false, RejectionReason: "at capacity"}, nil
	}
	return &internalv1.AssignMeetingResponse{Accepted: true}, nil
}

func (f *fakeMC) recorded() []assignCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]assignCall(nil), f.calls...)
}

// startFakeMC serves a fake MC that validates GC's token against e's issuer
// and, like the real MC, demands its own id as the token's audience.
func startFakeMC(t *testing.T, e *gcEnv, id string, accept bool) *fakeMC {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v, err := auth.NewValidator(ctx, e.iss.JWKSURL, logging.NewTo(e.logs, "fake-mc", "info"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcserver.New(v, map[string]auth.Requirement{
		internalv1.MeetingControllerService_AssignMeeting_FullMethodName: {Scope: auth.ScopeWriteMC, ServiceTypes: []string{auth.ServiceGlobalController}, Audience: id},
	}, prometheus.NewRegistry())
	ln := listen(t)
	f := &fakeMC{id: id, endpoint: "http://" + ln.Addr().String(), accept: accept}
	internalv1.RegisterMeetingControllerServiceServer(srv, f)
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// registerAs registers a controller at endpoint and heartbeats it with load
// current out of 10 meetings.
func registerAs(t *testing.T, mc internalv1.GlobalControllerServiceClient, id, region, endpoint string, current uint32, h internalv1.HealthStatus) {
	t.Helper()
	r := regReq(id, region)
	r.GrpcEndpoint = endpoint
	r.WebtransportEndpoint = "https://127.0.0.1:4433"
	if _, err := mc.RegisterMC(ctxT(t), r); err != nil {
		t.Fatal(err)
	}
	if h != pending {
		if _, err := mc.FastHeartbeat(ctxT(t), fastHB(id, current, h)); err != nil {
			t.Fatal(err)
		}
	}
}

type openRow struct {
	controller, region, by string
}

func openAssignments(t *testing.T, e *gcEnv, meeting string) []openRow {
	t.Helper()
	rows, err := e.pool.Query(ctxT(t), `SELECT controller_id, region, assigned_by FROM meeting_assignments
WHERE meeting_id = $1 AND ended_at IS NULL`, meeting)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []openRow
	for rows.Next() {
		var r openRow
		if err := rows.Scan(&r.controller, &r.region, &r.by); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// join asks GC to place meeting code with a web-client token.
func join(t *testing.T, e *gcEnv, code, region string) (int, JoinResult, string) {
	t.Helper()
	return joinAs(t, e, code, region, e.joinToken(t))
}

func joinAs(t *testing.T, e *gcEnv, code, region, token string) (int, JoinResult, string) {
	t.Helper()
	u := e.httpURL + "/api/v1/meetings/" + code + "/join"
	if region != "" {
		u += "?region=" + region
	}
	status, body := httpDo(t, "POST", u, token)
	var r JoinResult
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("join body %s: %v", body, err)
		}
	}
	return status, r, body
}

// TestJoin places meetings through real MeetingControllerService servers.
func TestJoin(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.Region = "home" })
	mc := client(t, e.grpcAddr, e.mcToken(t))

	t.Run("least loaded, recorded, then reused", func(t *testing.T) {
		busy, idle := startFakeMC(t, e, "mc-busy", true), startFakeMC(t, e, "mc-idle", true)
		registerAs(t, mc, "mc-busy", "home", busy.endpoint, 6, healthy)
		registerAs(t, mc, "mc-idle", "home", idle.endpoint, 2, healthy)

		code, r, body := join(t, e, "standup-1", "")
		if code != 200 || r.ControllerID != "mc-idle" || r.Region != "home" || r.MeetingID != "standup-1" ||
			strings.Contains(body, "grpc_endpoint") || strings.Contains(body, idle.endpoint) ||
			r.WebTransportURL != "https://127.0.0.1:4433/meetings/standup-1?token="+r.MeetingToken ||
			r.WebTransportCertSHA256 != strings.Repeat("ab", 32) {
			t.Fatalf("join = %d %s", code, body)
		}
		// Issue 11 item 4: the answer carries a meeting token AC signed for
		// this meeting, a new participant and the chosen MC.
		v, err := auth.NewStaticValidator(e.iss.Signer.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		mt, err := v.Validate(ctxT(t), r.MeetingToken)
		if err != nil || mt.MeetingID != "standup-1" || mt.Subject != r.ParticipantID || !strings.HasPrefix(r.ParticipantID, "p-") ||
			len(mt.Audience) != 1 || mt.Audience[0] != "mc-idle" || mt.Scope != auth.ScopeMeetingSession {
			t.Fatalf("meeting token %+v, %v; participant %q", mt, err, r.ParticipantID)
		}
		calls := idle.recorded()
		if len(calls) != 1 || calls[0] != (assignCall{"standup-1", "gc-test", gcClientID, auth.ServiceGlobalController}) {
			t.Fatalf("mc-idle saw %+v, want one AssignMeeting from gc-test with GC's token", calls)
		}
		if rows := openAssignments(t, e, "standup-1"); len(rows) != 1 || rows[0] != (openRow{"mc-idle", "home", "gc-test"}) {
			t.Fatalf("open assignments = %+v", rows)
		}
		// The same meeting again: same MC, no second AssignMeeting, still one row.
		code, r, body = join(t, e, "standup-1", "")
		if code != 200 || r.ControllerID != "mc-idle" {
			t.Fatalf("second join = %d %s", code, body)
		}
		// Reuse confirms the meeting at the same MC (it may have ended
		// there: issue 11 item 3), so a second call, and no other MC.
		if n := len(idle.recorded()); n != 2 {
			t.Fatalf("mc-idle got %d AssignMeeting calls, want 2 (placement, then reuse confirmed)", n)
		}
		if rows := openAssignments(t, e, "standup-1"); len(rows) != 1 {
			t.Fatalf("open assignments = %+v, want 1", rows)
		}
		if len(busy.recorded()) != 0 {
			t.Fatalf("mc-busy was asked though mc-idle had less load: %+v", busy.recorded())
		}

		// The hosting MC turns unhealthy: the assignment ends, mc-busy takes over.
		if _, err := mc.FastHeartbeat(ctxT(t), fastHB("mc-idle", 2, unhealthy)); err != nil {
			t.Fatal(err)
		}
		code, r, body = join(t, e, "standup-1", "")
		if code != 200 || r.ControllerID != "mc-busy" {
			t.Fatalf("join after mc-idle turned unhealthy = %d %s, want mc-busy", code, body)
		}
		if rows := openAssignments(t, e, "standup-1"); len(rows) != 1 || rows[0].controller != "mc-busy" {
			t.Fatalf("open assignments = %+v, want only mc-busy", rows)
		}
		var ended int
		if err := e.pool.QueryRow(ctxT(t), `SELECT count(*) FROM meeting_assignments WHERE meeting_id='standup-1' AND controller_id='mc-idle' AND ended_at IS NOT NULL`).Scan(&ended); err != nil || ended != 1 {
			t.Fatalf("ended mc-idle assignments = %d, %v; want 1", ended, err)
		}
	})

	t.Run("falls back past unreachable and rejecting controllers", func(t *testing.T) {
		rej, acc := startFakeMC(t, e, "mc-rej", false), startFakeMC(t, e, "mc-acc", true)
		dead := "http://" + listenClosed(t)
		registerAs(t, mc, "mc-dead", "fb", dead, 0, healthy)
		registerAs(t, mc, "mc-rej", "fb", rej.endpoint, 1, healthy)
		registerAs(t, mc, "mc-acc", "fb", acc.endpoint, 5, healthy)
		code, r, body := join(t, e, "retro", "fb")
		if code != 200 || r.ControllerID != "mc-acc" {
			t.Fatalf("join = %d %s, want mc-acc", code, body)
		}
		if n := len(rej.recorded()); n != 1 {
			t.Fatalf("rejecting MC saw %d calls, want 1", n)
		}
		if rows := openAssignments(t, e, "retro"); len(rows) != 1 || rows[0].controller != "mc-acc" {
			t.Fatalf("open assignments = %+v", rows)
		}
		// The claims on the controllers that did not take it were withdrawn,
		// load included (issue 11 item 2: row first, compensation on failure).
		var deadLoad, rejLoad int
		if err := e.pool.QueryRow(ctxT(t), `SELECT (SELECT current_meetings FROM meeting_controllers WHERE controller_id='mc-dead'),
    (SELECT current_meetings FROM meeting_controllers WHERE controller_id='mc-rej')`).Scan(&deadLoad, &rejLoad); err != nil || deadLoad != 0 || rejLoad != 1 {
			t.Fatalf("load after withdrawn claims: mc-dead %d (want 0), mc-rej %d (want its reported 1), %v", deadLoad, rejLoad, err)
		}
	})

	t.Run("503 without a healthy controller", func(t *testing.T) {
		pend := startFakeMC(t, e, "mc-pend", true)
		registerAs(t, mc, "mc-pend", "none", pend.endpoint, 0, pending)
		registerAs(t, mc, "mc-degr", "none", pend.endpoint, 0, degraded)
		for _, region := range []string{"none", "empty"} {
			if code, _, body := join(t, e, "lonely", region); code != 503 || !strings.Contains(body, "no healthy meeting controller") {
				t.Fatalf("region %s: join = %d %s, want 503", region, code, body)
			}
		}
		rej := startFakeMC(t, e, "mc-only-rej", false)
		registerAs(t, mc, "mc-only-rej", "allrej", rej.endpoint, 0, healthy)
		if code, _, body := join(t, e, "lonely", "allrej"); code != 503 || !strings.Contains(body, "1 refused the meeting") {
			t.Fatalf("all reject: join = %d %s, want 503 saying one refused", code, body)
		}
		// Issue 11 item 9: the caller gets counts, never internal endpoints
		// or dial errors; those go to GC's log.
		dead := listenClosed(t)
		registerAs(t, mc, "mc-gone", "unreach", "http://"+dead, 0, healthy)
		no := startFakeMC(t, e, "mc-no", false)
		registerAs(t, mc, "mc-no", "unreach", no.endpoint, 1, healthy)
		code, _, body := join(t, e, "lonely", "unreach")
		if code != 503 || !strings.Contains(body, "1 refused the meeting, 1 could not be reached") {
			t.Fatalf("unreachable + rejecting: join = %d %s", code, body)
		}
		for _, leak := range []string{dead, strings.TrimPrefix(no.endpoint, "http://"), "connection refused", "Unavailable", "at capacity"} {
			if strings.Contains(body, leak) {
				t.Errorf("503 body leaks %q: %s", leak, body)
			}
		}
		if !strings.Contains(e.logs.String(), dead) {
			t.Error("GC's log does not name the unreachable endpoint")
		}
		if len(pend.recorded()) != 0 || len(openAssignments(t, e, "lonely")) != 0 {
			t.Fatal("a pending or degraded controller was asked, or a row was written")
		}
	})

	t.Run("bad input is 400", func(t *testing.T) {
		for _, c := range []string{"has%20space", strings.Repeat("x", 65), "semi%3Bcolon"} {
			if code, _, body := join(t, e, c, ""); code != 400 {
				t.Errorf("code %q: %d %s, want 400", c, code, body)
			}
		}
		if code, _, body := join(t, e, "ok", strings.Repeat("r", 51)); code != 400 {
			t.Errorf("long region: %d %s, want 400", code, body)
		}
	})

	_, body := httpDo(t, "GET", e.httpURL+"/metrics", "")
	for _, m := range []string{`gc_meeting_joins_total{status="assigned"} 3`, `gc_meeting_joins_total{status="reused"} 1`,
		`gc_meeting_joins_total{status="unavailable"} 4`, `gc_meeting_joins_total{status="invalid"} 4`} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s; have:\n%s", m, grepLines(body, "gc_meeting_joins"))
		}
	}
}

// listenClosed returns an address on which nothing listens any more.
func listenClosed(t *testing.T) string {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Issue 11 item 10: GC closes its connection to a controller once no live
// registration advertises that endpoint; 40 registrations that came and
// went used to leave 40 connections and their goroutines behind.
func TestConnectionsToDepartedControllersClose(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) {
		c.Region = "conns"
		c.StalenessInterval = 200 * time.Millisecond
	})
	mc := client(t, e.grpcAddr, e.mcToken(t))
	var fakes []*fakeMC
	for i := range 4 {
		id := "mc-conn-" + string(rune('a'+i))
		f := startFakeMC(t, e, id, true)
		fakes = append(fakes, f)
		registerAs(t, mc, id, "conns", f.endpoint, 0, healthy)
		// Only this controller is healthy, so the join must dial it.
		if code, r, body := join(t, e, "conn-"+id, ""); code != 200 || r.ControllerID != id {
			t.Fatalf("join to %s = %d %s", id, code, body)
		}
		if i < 3 {
			if _, err := mc.DeregisterMC(ctxT(t), &internalv1.DeregisterMCRequest{ControllerId: id, Reason: "test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testsupport.Eventually(t, 10*time.Second, "connections to departed controllers closed", func() error {
		if n := e.app.joiner.open(); n != 1 {
			return fmt.Errorf("GC holds %d controller connections, want 1 (only %s is live)", n, fakes[3].id)
		}
		return nil
	})
	e.app.joiner.mu.Lock()
	_, kept := e.app.joiner.conns[fakes[3].endpoint]
	e.app.joiner.mu.Unlock()
	if !kept {
		t.Fatal("the live controller's connection was closed")
	}
}

// Issue 11 item 1: the token GC presents to one MC names that MC as its
// audience and lives minutes, so an MC that captures it cannot use it
// against another MC.
func TestTokenGCPresentsIsBoundToOneMC(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.Region = "aud" })
	mc := client(t, e.grpcAddr, e.mcToken(t))
	evil, victim := startFakeMC(t, e, "mc-evil", true), startFakeMC(t, e, "mc-victim", true)
	registerAs(t, mc, "mc-evil", "aud", evil.endpoint, 0, healthy)
	if code, r, body := join(t, e, "captured", ""); code != 200 || r.ControllerID != "mc-evil" {
		t.Fatalf("join = %d %s, want mc-evil", code, body)
	}
	evil.mu.Lock()
	captured := evil.lastAuth
	evil.mu.Unlock()
	if len(captured) != 1 {
		t.Fatalf("mc-evil saw authorization %v", captured)
	}
	tok, _ := auth.BearerToken(captured[0])
	v, err := auth.NewStaticValidator(e.iss.Signer.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Validate(ctxT(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims.Audience) != 1 || claims.Audience[0] != "mc-evil" || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > auth.AudienceTTL {
		t.Fatalf("GC's token for mc-evil: aud %v, lifetime %v; want aud [mc-evil] and at most %v",
			claims.Audience, claims.ExpiresAt.Sub(claims.IssuedAt.Time), auth.AudienceTTL)
	}
	// Replayed against another MC it is refused before anything happens.
	cc := conn(t, strings.TrimPrefix(victim.endpoint, "http://"), tok)
	_, err = internalv1.NewMeetingControllerServiceClient(cc).AssignMeeting(ctxT(t), &internalv1.AssignMeetingRequest{MeetingId: "stolen"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("replayed token at mc-victim: %v, want PERMISSION_DENIED", err)
	}
	if n := len(victim.recorded()); n != 0 {
		t.Fatalf("mc-victim served %d calls with a token for mc-evil", n)
	}
}

// Issue 11 item 3: placement weighs participants, not only meetings. A
// controller with one meeting but nearly full of participants is fuller
// than one with five quiet meetings, and one with no participant slot
// left is not a candidate at all.
func TestPlacementWeighsParticipants(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.Region = "load" })
	mc := client(t, e.grpcAddr, e.mcToken(t))
	beat := func(id string, meetings, participants uint32) {
		t.Helper()
		if _, err := mc.FastHeartbeat(ctxT(t), &internalv1.FastHeartbeatRequest{ControllerId: id, Health: healthy,
			Capacity: &internalv1.Capacity{MaxMeetings: 10, CurrentMeetings: meetings, MaxParticipants: 100, CurrentParticipants: participants}}); err != nil {
			t.Fatal(err)
		}
	}
	full, crowded, quiet := startFakeMC(t, e, "mc-full", true), startFakeMC(t, e, "mc-crowded", true), startFakeMC(t, e, "mc-quiet", true)
	registerAs(t, mc, "mc-full", "load", full.endpoint, 0, pending)
	registerAs(t, mc, "mc-crowded", "load", crowded.endpoint, 0, pending)
	registerAs(t, mc, "mc-quiet", "load", quiet.endpoint, 0, pending)
	beat("mc-full", 0, 100)   // no meetings, no participant slot
	beat("mc-crowded", 1, 95) // 10% of meetings, 95% of participants
	beat("mc-quiet", 5, 10)   // 50% of meetings, 10% of participants
	if code, r, body := join(t, e, "weighed", ""); code != 200 || r.ControllerID != "mc-quiet" {
		t.Fatalf("join = %d %s, want mc-quiet (least loaded by participants too)", code, body)
	}
	if len(full.recorded())+len(crowded.recorded()) != 0 {
		t.Fatalf("a fuller controller was asked first: full %v, crowded %v", full.recorded(), crowded.recorded())
	}
}

// Joins placed on a slow MC hold database connections across AssignMeeting;
// they must not take the whole pool: heartbeats still get through.
func TestHeartbeatsServedWhilePlacementsWait(t *testing.T) {
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.Region = "home"; c.JoinBurst = 100 })
	mc := client(t, e.grpcAddr, e.mcToken(t))
	slow := startFakeMC(t, e, "mc-slow", true)
	slow.hold = make(chan struct{})
	registerAs(t, mc, "mc-slow", "home", slow.endpoint, 0, healthy)
	other := startFakeMC(t, e, "mc-other", true)
	registerAs(t, mc, "mc-other", "home", other.endpoint, 9, healthy)

	// More joins than the pool has connections, all placed on mc-slow (the
	// least loaded), all waiting in its AssignMeeting.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { join(t, e, fmt.Sprintf("slow-%02d", i), "") })
	}
	defer wg.Wait()
	defer close(slow.hold)
	testsupport.Eventually(t, 10*time.Second, "placements waiting in mc-slow's AssignMeeting", func() bool {
		return len(slow.recorded()) >= 2
	})
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := mc.FastHeartbeat(ctx, fastHB("mc-other", 9, healthy))
		cancel()
		if err != nil {
			t.Fatalf("a heartbeat while placements wait on a slow MC: %v", err)
		}
	}
}
