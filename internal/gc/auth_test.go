package gc

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/testsupport"
)

// TestAuth checks the gRPC and HTTP auth rules with real signed tokens
// validated against the issuer's JWKS served over HTTP.
func TestAuth(t *testing.T) {
	e := startGC(t, migratedPostgres(t), nil)
	expired, _, err := e.iss.Signer.Sign("meeting-controller", auth.ScopeWriteGC, auth.ServiceMeetingController, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stranger := testsupport.NewIssuer(t).Token(t, "meeting-controller", auth.ScopeWriteGC, auth.ServiceMeetingController)
	// Right scope, wrong service type: only meeting controllers may register.
	wrongType := e.iss.Token(t, "impostor", auth.ScopeWriteGC, auth.ServiceVerifier)

	t.Run("gRPC", func(t *testing.T) {
		_, err := client(t, e.grpcAddr, "").RegisterMC(ctxT(t), regReq("mc-a", "a"))
		wantCode(t, err, codes.Unauthenticated, "authorization")
		_, err = client(t, e.grpcAddr, e.verifierToken(t)).RegisterMC(ctxT(t), regReq("mc-a", "a"))
		wantCode(t, err, codes.PermissionDenied, "RegisterMC")
		_, err = client(t, e.grpcAddr, wrongType).FastHeartbeat(ctxT(t), fastHB("mc-a", 0, healthy))
		wantCode(t, err, codes.PermissionDenied, "FastHeartbeat")
		_, err = client(t, e.grpcAddr, expired).RegisterMC(ctxT(t), regReq("mc-a", "a"))
		wantCode(t, err, codes.Unauthenticated, "expired")
		_, err = client(t, e.grpcAddr, stranger).RegisterMC(ctxT(t), regReq("mc-a", "a"))
		wantCode(t, err, codes.Unauthenticated, "invalid token")
		_, err = client(t, e.grpcAddr, "not-a-jwt").ListMeetingControllers(ctxT(t), &internalv1.ListMeetingControllersRequest{})
		wantCode(t, err, codes.Unauthenticated, "invalid token")
		// A meeting controller token lacks service.read.gc.
		_, err = client(t, e.grpcAddr, e.mcToken(t)).ListMeetingControllers(ctxT(t), &internalv1.ListMeetingControllersRequest{})
		wantCode(t, err, codes.PermissionDenied, "ListMeetingControllers")
		if n := rowCount(t, e); n != 0 {
			t.Fatalf("refused calls left %d rows", n)
		}
	})

	t.Run("grpc.health.v1 needs no token", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(conn(t, e.grpcAddr, "")).Check(ctxT(t), &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health = %v, %v; want SERVING", resp, err)
		}
	})

	t.Run("HTTP list", func(t *testing.T) {
		mc := client(t, e.grpcAddr, e.mcToken(t))
		if _, err := mc.RegisterMC(ctxT(t), regReq("mc-http", "h")); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.FastHeartbeat(ctxT(t), fastHB("mc-http", 2, healthy)); err != nil {
			t.Fatal(err)
		}
		u := e.httpURL + "/api/v1/meeting-controllers"
		for _, c := range []struct {
			name, token string
			want        int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"garbage token", "garbage", http.StatusUnauthorized},
			{"expired token", expired, http.StatusUnauthorized},
			{"unknown key", stranger, http.StatusUnauthorized},
			{"wrong scope", e.mcToken(t), http.StatusForbidden},
		} {
			if code, body := httpDo(t, "GET", u, c.token); code != c.want {
				t.Errorf("%s: %d %s, want %d", c.name, code, body, c.want)
			}
		}
		code, body := httpDo(t, "GET", u+"?region=h&health=healthy", e.verifierToken(t))
		var got struct{ Controllers []controllerJSON }
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Controllers) != 1 {
			t.Fatalf("list = %d %s, want one controller", code, body)
		}
		c := got.Controllers[0]
		if c.ID != "mc-http" || c.Health != "healthy" || c.Capacity.CurrentMeetings != 2 || c.LastHeartbeatAt.IsZero() {
			t.Fatalf("controller = %+v", c)
		}
		if code, body := httpDo(t, "GET", u+"?health=pending", e.verifierToken(t)); code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Controllers) != 0 {
			t.Fatalf("health=pending: %d %s, want none", code, body)
		}
		if code, body := httpDo(t, "GET", u+"?health=sleepy", e.verifierToken(t)); code != 400 {
			t.Fatalf("health=sleepy: %d %s, want 400", code, body)
		}
	})
}

func rowCount(t testing.TB, e *gcEnv) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(ctxT(t), `SELECT count(*) FROM meeting_controllers`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
