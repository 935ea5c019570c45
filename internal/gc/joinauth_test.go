package gc

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/testsupport"
)

// joinURL is GC's join endpoint for meeting code.
func joinURL(e *gcEnv, code string) string {
	return e.httpURL + "/api/v1/meetings/" + code + "/join"
}

// TestJoinNeedsMeetingJoinToken (issue 11 item 3): 193 anonymous joins
// filled every MC. A join now needs a token AC signed with scope
// meeting.join: none or an invalid one is 401 with WWW-Authenticate, another
// scope 403, and nothing is placed for a refused caller.
func TestJoinNeedsMeetingJoinToken(t *testing.T) {
	e := startGC(t, migratedPostgres(t), nil)
	fake := startFakeMC(t, e, "mc-join", true)
	registerAs(t, client(t, e.grpcAddr, e.mcToken(t)), "mc-join", "local", fake.endpoint, 0, healthy)

	expired, _, err := e.iss.Signer.Sign("web-client", auth.ScopeMeetingJoin, auth.ServiceWebClient, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stranger := testsupport.NewIssuer(t).Token(t, "web-client", auth.ScopeMeetingJoin, auth.ServiceWebClient)
	for _, c := range []struct {
		name, token string
		want        int
		challenge   string // in WWW-Authenticate
	}{
		{"no token", "", http.StatusUnauthorized, `Bearer realm="global-controller"`},
		{"garbage token", "garbage", http.StatusUnauthorized, `error="invalid_token"`},
		{"expired token", expired, http.StatusUnauthorized, `error="invalid_token"`},
		{"token from a key AC never had", stranger, http.StatusUnauthorized, `error="invalid_token"`},
		{"meeting controller's token", e.mcToken(t), http.StatusForbidden, `error="insufficient_scope", scope="meeting.join"`},
		{"verifier's token", e.verifierToken(t), http.StatusForbidden, `error="insufficient_scope", scope="meeting.join"`},
	} {
		code, h, body := httpDoHeader(t, "POST", joinURL(e, "guarded"), c.token)
		if code != c.want || !strings.Contains(h.Get("WWW-Authenticate"), c.challenge) {
			t.Errorf("%s: %d %q %s, want %d with WWW-Authenticate %s", c.name, code, h.Get("WWW-Authenticate"), body, c.want, c.challenge)
		}
	}
	if calls := fake.recorded(); len(calls) != 0 {
		t.Fatalf("refused joins reached the MC: %+v", calls)
	}
	if rows := openAssignments(t, e, "guarded"); len(rows) != 0 {
		t.Fatalf("refused joins placed the meeting: %+v", rows)
	}

	code, r, body := join(t, e, "guarded", "")
	if code != http.StatusOK || r.ControllerID != "mc-join" || r.MeetingToken == "" {
		t.Fatalf("join with a web-client token = %d %s", code, body)
	}
	_, metrics := httpDo(t, "GET", e.httpURL+"/metrics", "")
	for _, m := range []string{`gc_meeting_joins_total{status="unauthorized"} 6`, `gc_meeting_joins_total{status="assigned"} 1`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %s; have:\n%s", m, grepLines(metrics, "gc_meeting_joins"))
		}
	}
}

// TestJoinRateLimitPerCaller: a caller that used its burst gets 429 with
// Retry-After, whichever of its tokens it presents and whether or not the
// request was valid, while another caller still joins; once Retry-After has
// passed it joins again.
func TestJoinRateLimitPerCaller(t *testing.T) {
	const burst, interval = 3, 3 * time.Second
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.JoinBurst, c.JoinInterval = burst, interval })
	fake := startFakeMC(t, e, "mc-limit", true)
	registerAs(t, client(t, e.grpcAddr, e.mcToken(t)), "mc-limit", "local", fake.endpoint, 0, healthy)

	hammer := e.iss.Token(t, "web-client", auth.ScopeMeetingJoin, auth.ServiceWebClient)
	if code, _, body := joinAs(t, e, "bad%20code", "", hammer); code != http.StatusBadRequest {
		t.Fatalf("invalid join = %d %s, want 400", code, body)
	}
	for i := range burst - 1 {
		if code, _, body := joinAs(t, e, fmt.Sprintf("busy-%d", i), "", hammer); code != http.StatusOK {
			t.Fatalf("join %d of the burst = %d %s", i, code, body)
		}
	}
	// The same caller with a fresh token: the limit is per caller, not per token.
	again := e.iss.Token(t, "web-client", auth.ScopeMeetingJoin, auth.ServiceWebClient)
	code, h, body := httpDoHeader(t, "POST", joinURL(e, "one-more"), again)
	retry, err := strconv.Atoi(h.Get("Retry-After"))
	if code != http.StatusTooManyRequests || err != nil || retry < 1 || retry > int(interval/time.Second) ||
		!strings.Contains(body, "too many joins from web-client") {
		t.Fatalf("join past the burst = %d Retry-After %q %s, want 429 with Retry-After 1-%d", code, h.Get("Retry-After"), body, int(interval/time.Second))
	}
	if rows := openAssignments(t, e, "one-more"); len(rows) != 0 {
		t.Fatalf("a rate-limited join placed the meeting: %+v", rows)
	}

	other := e.iss.Token(t, "another-client", auth.ScopeMeetingJoin, auth.ServiceWebClient)
	if code, _, body := joinAs(t, e, "one-more", "", other); code != http.StatusOK {
		t.Fatalf("another caller's join while web-client is limited = %d %s", code, body)
	}

	time.Sleep(time.Duration(retry) * time.Second)
	if code, _, body := joinAs(t, e, "one-more", "", hammer); code != http.StatusOK {
		t.Fatalf("join after Retry-After = %d %s", code, body)
	}
	_, metrics := httpDo(t, "GET", e.httpURL+"/metrics", "")
	if m := `gc_meeting_joins_total{status="rate_limited"} 1`; !strings.Contains(metrics, m) {
		t.Errorf("metrics lack %s; have:\n%s", m, grepLines(metrics, "gc_meeting_joins"))
	}
}

// TestJoinLimiterIsBounded: callers past GC_JOIN_MAX_CALLERS push out the
// one unseen longest, so the limiter's memory stays bounded however many
// identities call; the callers it still tracks stay limited.
func TestJoinLimiterIsBounded(t *testing.T) {
	const tracked = 5
	e := startGC(t, migratedPostgres(t), func(c *Config) { c.JoinBurst, c.JoinInterval, c.JoinMaxCallers = 1, time.Hour, tracked })
	last := ""
	for i := range 60 {
		last = e.iss.Token(t, fmt.Sprintf("caller-%02d", i), auth.ScopeMeetingJoin, auth.ServiceWebClient)
		// No controller is registered: each join is 503 after it counted.
		if code, _, body := joinAs(t, e, "bounded", "", last); code != http.StatusServiceUnavailable {
			t.Fatalf("caller %d: join = %d %s, want 503", i, code, body)
		}
	}
	_, metrics := httpDo(t, "GET", e.httpURL+"/metrics", "")
	if m := "gc_join_limiter_callers " + strconv.Itoa(tracked); !strings.Contains(metrics, m) {
		t.Fatalf("metrics lack %s; have:\n%s", m, grepLines(metrics, "gc_join_limiter"))
	}
	if n := e.app.joinLimit.tracked(); n != tracked {
		t.Fatalf("limiter tracks %d callers, want %d", n, tracked)
	}
	if code, _, body := joinAs(t, e, "bounded", "", last); code != http.StatusTooManyRequests {
		t.Fatalf("the last caller's second join = %d %s, want 429", code, body)
	}
}
