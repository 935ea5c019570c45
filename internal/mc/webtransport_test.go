package mc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/mc"
	"github.com/darktower/devstack/internal/testsupport"
)

func TestWebTransport(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	r := st.startMC(t, "mc-wt-1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := dialMC(t, r).AssignMeeting(withToken(ctx, st.gcToken(t, r)), &pb.AssignMeetingRequest{MeetingId: "room-1", RequestingGcId: "gc-a"})
	if err != nil || !resp.GetAccepted() {
		t.Fatalf("AssignMeeting: %v %v", resp, err)
	}
	secret, err := base64.StdEncoding.DecodeString(r.env["MC_BINDING_TOKEN_SECRET"])
	if err != nil {
		t.Fatal(err)
	}

	// Assigned meeting, pinned to the hash MC registered with GC.
	testsupport.Eventually(t, 5*time.Second, "registration", func() bool { return st.gc.count("register") >= 1 })
	pin := st.gc.snapshot()[0].register.GetWebtransportCertSha256()
	w1, err := mc.DialWebTransport(ctx, r.meetingURL("room-1"), pin)
	if err != nil {
		t.Fatalf("DialWebTransport: %v", err)
	}
	if w1.MeetingID != "room-1" || w1.ControllerID != "mc-wt-1" || w1.SessionNonce == "" {
		t.Fatalf("welcome = %+v", w1)
	}
	if !mc.VerifyBindingToken(secret, "room-1", w1.SessionNonce, w1.BindingToken) {
		t.Fatalf("binding token %q does not verify with MC_BINDING_TOKEN_SECRET", w1.BindingToken)
	}
	if mc.VerifyBindingToken([]byte("another secret, also 32 bytes!!!"), "room-1", w1.SessionNonce, w1.BindingToken) ||
		mc.VerifyBindingToken(secret, "room-2", w1.SessionNonce, w1.BindingToken) {
		t.Fatal("binding token verifies with the wrong secret or meeting")
	}

	// A session held open counts as a participant in heartbeats.
	cs, err := mc.OpenWebTransport(ctx, r.meetingURL("room-1"), strings.ToUpper(pin))
	if err != nil {
		t.Fatalf("OpenWebTransport: %v", err)
	}
	if cs.Welcome.SessionNonce == w1.SessionNonce || cs.Welcome.BindingToken == w1.BindingToken {
		t.Fatal("two sessions got the same nonce and token")
	}
	testsupport.Eventually(t, 5*time.Second, "heartbeat with current_participants=1", func() bool {
		ev := st.gc.snapshot()
		e := ev[len(ev)-1]
		return (e.kind == "fast" || e.kind == "comprehensive") && e.capacity.GetCurrentParticipants() == 1
	})
	_ = cs.Close()

	// Unknown meeting and a meeting of another controller: 404, no upgrade.
	var refused *mc.RefusedError
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("nobody-here"), pin); !errors.As(err, &refused) || refused.StatusCode != 404 {
		t.Fatalf("unknown meeting: %v, want a 404 refusal", err)
	}
	rdb := st.redis.Client(t)
	if err := rdb.HSet(ctx, "meeting:elsewhere", "controller_id", "mc-other", "status", "active").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("elsewhere"), pin); !errors.As(err, &refused) || refused.StatusCode != 404 {
		t.Fatalf("meeting of another MC: %v, want a 404 refusal", err)
	}

	// Issue 11 item 4: no meeting token, or one for another meeting, another
	// MC, or not a meeting token at all: 401 before anything counts.
	other, _, _ := st.issuer.Signer.SignMeeting("p-test", "room-1", "mc-other", time.Minute)
	room2, _, _ := st.issuer.Signer.SignMeeting("p-test", "room-2", "mc-wt-1", time.Minute)
	expired, _, _ := st.issuer.Signer.SignMeeting("p-test", "room-1", "mc-wt-1", -time.Minute)
	for what, u := range map[string]string{
		"no token":           r.bareURL("room-1"),
		"garbage":            r.bareURL("room-1") + "?token=not-a-jwt",
		"another MC":         r.bareURL("room-1") + "?token=" + other,
		"another meeting":    r.bareURL("room-1") + "?token=" + room2,
		"expired":            r.bareURL("room-1") + "?token=" + expired,
		"GC's service token": r.bareURL("room-1") + "?token=" + st.gcToken(t, r),
	} {
		if _, err := mc.DialWebTransport(ctx, u, pin); !errors.As(err, &refused) || refused.StatusCode != 401 {
			t.Errorf("%s: %v, want a 401 refusal", what, err)
		}
	}

	// A wrong pin fails the handshake.
	wrong := strings.Repeat("ab", 32)
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("room-1"), wrong); err == nil || errors.As(err, &refused) ||
		!strings.Contains(err.Error(), "does not match the pin") {
		t.Fatalf("wrong pin: %v, want a certificate pin mismatch", err)
	}
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("room-1"), "not-hex"); err == nil {
		t.Fatal("malformed pin accepted")
	}

	m := r.healthURL("/metrics")
	if a, f := metric(t, m, "mc_webtransport_sessions_total", "status=accepted"), metric(t, m, "mc_webtransport_sessions_total", "status=refused"); a != 2 || f != 8 {
		t.Fatalf("mc_webtransport_sessions_total accepted=%v refused=%v, want 2 and 8", a, f)
	}
}

// Issue 11 item 3: meetings end. One nobody joins ends after
// MC_MEETING_IDLE_TTL; one whose last participant left ends after
// MC_MEETING_GRACE; while someone is in it, it does not end; the count that
// heartbeats report follows. (Before, meeting keys had no TTL at all.)
func TestMeetingsEnd(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	r := st.startMC(t, "mc-end-1", func(env map[string]string) {
		env["MC_MEETING_IDLE_TTL"] = "1s"
		env["MC_MEETING_GRACE"] = "1s"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := st.redis.Client(t)
	for _, m := range []string{"idle-1", "live-1"} {
		resp, err := dialMC(t, r).AssignMeeting(withToken(ctx, st.gcToken(t, r)), &pb.AssignMeetingRequest{MeetingId: m, RequestingGcId: "gc-a"})
		if err != nil || !resp.GetAccepted() {
			t.Fatalf("AssignMeeting %s: %v %v", m, resp, err)
		}
	}
	if ttl, err := rdb.PTTL(ctx, "meeting:idle-1").Result(); err != nil || ttl <= 0 {
		t.Fatalf("a meeting without participants has TTL %v, %v; want the idle TTL", ttl, err)
	}
	testsupport.Eventually(t, 5*time.Second, "registration", func() bool { return st.gc.count("register") >= 1 })
	pin := st.gc.snapshot()[0].register.GetWebtransportCertSha256()
	cs, err := mc.OpenWebTransport(ctx, r.meetingURL("live-1"), pin)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.PTTL(ctx, "meeting:live-1").Result(); ttl != -1 {
		t.Fatalf("a meeting with a participant has TTL %v, want none", ttl)
	}
	// The idle meeting ends; the live one stays while its participant does.
	testsupport.Eventually(t, 10*time.Second, "idle-1 ended and left the count", func() bool {
		n, _ := rdb.Exists(ctx, "meeting:idle-1").Result()
		in, _ := rdb.SIsMember(ctx, "mc:mc-end-1:meetings", "idle-1").Result()
		return n == 0 && !in
	})
	if n, _ := rdb.Exists(ctx, "meeting:live-1").Result(); n != 1 {
		t.Fatal("a meeting with a participant ended")
	}
	_ = cs.Close()
	testsupport.Eventually(t, 10*time.Second, "live-1 ended after its last participant left", func() bool {
		n, _ := rdb.Exists(ctx, "meeting:live-1").Result()
		return n == 0
	})
	testsupport.Eventually(t, 10*time.Second, "a heartbeat with current_meetings=0", func() bool {
		ev := st.gc.snapshot()
		e := ev[len(ev)-1]
		return (e.kind == "fast" || e.kind == "comprehensive") && e.capacity.GetCurrentMeetings() == 0
	})
	// An ended meeting is not joinable at this MC any more.
	var refused *mc.RefusedError
	if _, err := mc.DialWebTransport(ctx, r.meetingURL("live-1"), pin); !errors.As(err, &refused) || refused.StatusCode != 404 {
		t.Fatalf("ended meeting: %v, want a 404 refusal", err)
	}
}

// A restarted MC does not keep meetings alive that no session holds any
// more: those left without a TTL get the grace and end.
func TestRestartDoesNotResurrectMeetings(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := st.redis.Client(t)
	// What a process killed while a participant was in the meeting leaves.
	if err := rdb.HSet(ctx, "meeting:left-over", "controller_id", "mc-restart-1", "status", "active").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, "mc:mc-restart-1:meetings", "left-over").Err(); err != nil {
		t.Fatal(err)
	}
	st.startMC(t, "mc-restart-1", func(env map[string]string) { env["MC_MEETING_GRACE"] = "1s" })
	testsupport.Eventually(t, 10*time.Second, "the left-over meeting ended and left the count", func() bool {
		n, _ := rdb.Exists(ctx, "meeting:left-over").Result()
		c, _ := rdb.SCard(ctx, "mc:mc-restart-1:meetings").Result()
		return n == 0 && c == 0
	})
}
