package mc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestAssignMeeting(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	r := st.startMC(t, "mc-assign-1", func(env map[string]string) { env["MC_MAX_MEETINGS"] = "2" })
	client := dialMC(t, r)
	rdb := st.redis.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &pb.AssignMeetingRequest{MeetingId: "m-1", RequestingGcId: "gc-a"}

	// Auth: no token, MC's own token, a token with the scope but the wrong service type.
	if _, err := client.AssignMeeting(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without token: %v, want UNAUTHENTICATED", err)
	}
	if _, err := client.AssignMeeting(withToken(ctx, "not-a-jwt"), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("garbage token: %v, want UNAUTHENTICATED", err)
	}
	mcTok := st.issuer.Token(t, mcClientID, auth.ScopeWriteGC, auth.ServiceMeetingController)
	if _, err := client.AssignMeeting(withToken(ctx, mcTok), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("with MC's token: %v, want PERMISSION_DENIED", err)
	}
	verifierTok := st.issuer.Token(t, "verifier", auth.ScopeWriteMC, auth.ServiceVerifier)
	if _, err := client.AssignMeeting(withToken(ctx, verifierTok), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("with scope but service_type verifier: %v, want PERMISSION_DENIED", err)
	}
	if n, _ := rdb.Exists(ctx, "meeting:m-1").Result(); n != 0 {
		t.Fatal("a refused call wrote Redis state")
	}

	// Issue 11 item 1: GC's token for another MC, or one with no audience,
	// is refused here: a token captured by one MC is useless at another.
	for what, aud := range map[string]string{"another MC's audience": "mc-other", "no audience": ""} {
		tok, _, err := st.issuer.Signer.SignFor("global-controller", auth.ScopeWriteMC, auth.ServiceGlobalController, aud, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.AssignMeeting(withToken(ctx, tok), req); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "audience") {
			t.Fatalf("GC token with %s: %v, want PERMISSION_DENIED naming the audience", what, err)
		}
	}
	if n, _ := rdb.Exists(ctx, "meeting:m-1").Result(); n != 0 {
		t.Fatal("a refused call wrote Redis state")
	}

	gctx := withToken(ctx, st.gcToken(t, r))
	resp, err := client.AssignMeeting(gctx, req)
	if err != nil || !resp.GetAccepted() {
		t.Fatalf("with GC's token: %v %v, want accepted", resp, err)
	}
	h, err := rdb.HGetAll(ctx, "meeting:m-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	at, perr := time.Parse(time.RFC3339, h["assigned_at"])
	if h["controller_id"] != "mc-assign-1" || h["assigned_by"] != "gc-a" || h["status"] != "active" || perr != nil || time.Since(at) > time.Minute {
		t.Fatalf("meeting:m-1 = %v", h)
	}
	if ok, _ := rdb.SIsMember(ctx, "mc:mc-assign-1:meetings", "m-1").Result(); !ok {
		t.Fatal("m-1 not in mc:mc-assign-1:meetings")
	}

	// Same meeting again: accepted, state unchanged.
	// A marker in assigned_at shows whether the repeat rewrote the hash.
	const marker = "2000-01-01T00:00:00Z"
	if err := rdb.HSet(ctx, "meeting:m-1", "assigned_at", marker).Err(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "m-1", RequestingGcId: "gc-b"}); err != nil || !resp.GetAccepted() {
		t.Fatalf("repeat: %v %v", resp, err)
	}
	h2, _ := rdb.HGetAll(ctx, "meeting:m-1").Result()
	if h2["assigned_at"] != marker || h2["assigned_by"] != "gc-a" || h2["controller_id"] != "mc-assign-1" {
		t.Fatalf("repeat assignment rewrote the state: %v", h2)
	}

	// Issue 11 item 2: a meeting another controller holds is not taken
	// silently; only when GC names that controller as the previous one.
	if err := rdb.HSet(ctx, "meeting:elsewhere-1", "controller_id", "mc-other", "status", "active").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, "mc:mc-other:meetings", "elsewhere-1").Err(); err != nil {
		t.Fatal(err)
	}
	resp, err = client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "elsewhere-1", RequestingGcId: "gc-a"})
	if err != nil || resp.GetAccepted() || !strings.Contains(resp.GetRejectionReason(), "another meeting controller") {
		t.Fatalf("meeting held by mc-other: %v %v, want rejected", resp, err)
	}
	if owner, _ := rdb.HGet(ctx, "meeting:elsewhere-1", "controller_id").Result(); owner != "mc-other" {
		t.Fatalf("refused takeover changed the owner to %q", owner)
	}
	resp, err = client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "elsewhere-1", RequestingGcId: "gc-a", PreviousControllerId: "mc-other"})
	if err != nil || !resp.GetAccepted() {
		t.Fatalf("takeover naming mc-other: %v %v, want accepted", resp, err)
	}
	if owner, _ := rdb.HGet(ctx, "meeting:elsewhere-1", "controller_id").Result(); owner != "mc-assign-1" {
		t.Fatalf("after the named takeover the owner is %q", owner)
	}
	if in, _ := rdb.SIsMember(ctx, "mc:mc-other:meetings", "elsewhere-1").Result(); in {
		t.Fatal("the previous controller still lists the meeting")
	}
	// Give the slot back: the capacity checks below count on one meeting.
	if err := rdb.SRem(ctx, "mc:mc-assign-1:meetings", "elsewhere-1").Err(); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{"", "has space", "semi;colon", strings.Repeat("x", 65)} {
		if _, err := client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: bad}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("meeting_id %q: %v, want INVALID_ARGUMENT", bad, err)
		}
	}

	// Capacity 2: m-2 fits, m-3 does not, m-1 (already here) still does.
	if resp, err := client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "m-2"}); err != nil || !resp.GetAccepted() {
		t.Fatalf("m-2: %v %v", resp, err)
	}
	if got, _ := rdb.HGet(ctx, "meeting:m-2", "assigned_by").Result(); got != "global-controller" {
		t.Fatalf("assigned_by without requesting_gc_id = %q, want the caller's client id", got)
	}
	resp, err = client.AssignMeeting(gctx, &pb.AssignMeetingRequest{MeetingId: "m-3", RequestingGcId: "gc-a"})
	if err != nil || resp.GetAccepted() || !strings.Contains(resp.GetRejectionReason(), "capacity") {
		t.Fatalf("m-3 at capacity: %v %v, want rejected for capacity", resp, err)
	}
	if n, _ := rdb.Exists(ctx, "meeting:m-3").Result(); n != 0 {
		t.Fatal("rejected meeting was written")
	}
	if resp, err := client.AssignMeeting(gctx, req); err != nil || !resp.GetAccepted() {
		t.Fatalf("m-1 again at capacity: %v %v", resp, err)
	}
	if n, _ := rdb.SCard(ctx, "mc:mc-assign-1:meetings").Result(); n != 2 {
		t.Fatalf("SCARD = %d, want 2", n)
	}

	// Heartbeats report the Redis count.
	testsupport.Eventually(t, 5*time.Second, "heartbeat with current_meetings=2", func() bool {
		ev := st.gc.snapshot()
		for i := len(ev) - 1; i >= 0; i-- {
			if ev[i].kind == "fast" || ev[i].kind == "comprehensive" {
				return ev[i].capacity.GetCurrentMeetings() == 2 && ev[i].capacity.GetMaxMeetings() == 2
			}
		}
		return false
	})
	m := r.healthURL("/metrics")
	if metric(t, m, "mc_active_meetings") != 2 || metric(t, m, "mc_meetings_assigned_total", "status=accepted") != 5 ||
		metric(t, m, "mc_meetings_assigned_total", "status=rejected") < 1 {
		t.Fatalf("metrics: active=%v accepted=%v rejected=%v", metric(t, m, "mc_active_meetings"),
			metric(t, m, "mc_meetings_assigned_total", "status=accepted"), metric(t, m, "mc_meetings_assigned_total", "status=rejected"))
	}
	if metric(t, m, "grpc_server_handled_total", "grpc_method=AssignMeeting", "grpc_code=PermissionDenied") < 2 {
		t.Fatal("grpc_server_handled_total does not show the refused calls")
	}
}
