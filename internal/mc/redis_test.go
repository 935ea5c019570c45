package mc_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/testsupport"
)

// lastHealth is the health of the latest heartbeat GC received.
func lastHealth(g *fakeGC) pb.HealthStatus {
	ev := g.snapshot()
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].kind == "fast" || ev[i].kind == "comprehensive" {
			return ev[i].health
		}
	}
	return pb.HealthStatus_HEALTH_STATUS_UNSPECIFIED
}

// Without Redis MC is not ready, reports DEGRADED and cannot take meetings;
// it recovers when Redis returns.
func TestRedisOutage(t *testing.T) {
	st := newStack(t)
	st.gc.start()
	r := st.startMC(t, "mc-redis-1", nil)
	ready := r.healthURL("/health/ready")
	testsupport.Eventually(t, 5*time.Second, "ready", func() bool { return httpStatus(t, ready) == http.StatusOK })

	st.redis.Stop()
	testsupport.Eventually(t, 10*time.Second, "not ready without Redis", func() bool { return httpStatus(t, ready) == http.StatusServiceUnavailable })
	testsupport.Eventually(t, 10*time.Second, "DEGRADED heartbeat", func() bool { return lastHealth(st.gc) == pb.HealthStatus_HEALTH_STATUS_DEGRADED })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := dialMC(t, r).AssignMeeting(withToken(ctx, st.gcToken(t, r)), &pb.AssignMeetingRequest{MeetingId: "m-1"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("AssignMeeting without Redis: %v, want UNAVAILABLE", err)
	}

	st.redis.Start()
	testsupport.Eventually(t, 10*time.Second, "ready again", func() bool { return httpStatus(t, ready) == http.StatusOK })
	testsupport.Eventually(t, 10*time.Second, "HEALTHY heartbeat", func() bool { return lastHealth(st.gc) == pb.HealthStatus_HEALTH_STATUS_HEALTHY })
}
