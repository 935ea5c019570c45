package mc

import (
	"context"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/logging"
)

// meetingIDPattern is the meeting code GC accepts on its join endpoint.
var meetingIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// controllerIDPattern is an MC id (SPEC section 5).
var controllerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// grpcRules: only GC may place meetings on MC, with a token AC issued for
// this MC (aud = id): one captured by another MC is refused here.
func grpcRules(id string) map[string]auth.Requirement {
	return map[string]auth.Requirement{
		pb.MeetingControllerService_AssignMeeting_FullMethodName: {
			Scope:        auth.ScopeWriteMC,
			ServiceTypes: []string{auth.ServiceGlobalController},
			Audience:     id,
		},
	}
}

type assignService struct {
	pb.UnimplementedMeetingControllerServiceServer
	s *Server
}

// AssignMeeting accepts a meeting unless MC is draining or full. The auth
// interceptor has already checked the caller's token.
func (a assignService) AssignMeeting(ctx context.Context, req *pb.AssignMeetingRequest) (*pb.AssignMeetingResponse, error) {
	s := a.s
	mid := req.GetMeetingId()
	if !meetingIDPattern.MatchString(mid) {
		s.m.assignments.WithLabelValues(statusRejected).Inc()
		return nil, status.Error(codes.InvalidArgument, "meeting_id: expected 1 to 64 characters of [A-Za-z0-9_-]")
	}
	by := logging.Bound(req.GetRequestingGcId())
	if by == "" {
		if c, ok := auth.ClaimsFrom(ctx); ok {
			by = c.Subject
		}
	}
	reject := func(reason string) (*pb.AssignMeetingResponse, error) {
		s.m.assignments.WithLabelValues(statusRejected).Inc()
		s.log.Info("meeting assignment rejected", "meeting_id", mid, "requesting_gc_id", by, "reason", reason)
		return &pb.AssignMeetingResponse{Accepted: false, RejectionReason: reason}, nil
	}
	if s.draining.Load() {
		return reject("draining: this meeting controller is shutting down")
	}
	prev := req.GetPreviousControllerId()
	if prev != "" && !controllerIDPattern.MatchString(prev) {
		s.m.assignments.WithLabelValues(statusRejected).Inc()
		return nil, status.Error(codes.InvalidArgument, "previous_controller_id: expected 1 to 255 characters of [A-Za-z0-9_-]")
	}
	res, err := s.store.assign(ctx, mid, by, prev, s.cfg.MaxMeetings, s.cfg.MeetingIdleTTL, time.Now())
	if err != nil {
		s.m.assignments.WithLabelValues(statusRejected).Inc()
		s.log.Error("writing meeting assignment to Redis failed", "meeting_id", mid, "redis", s.redisAddr, "error", err)
		return nil, status.Error(codes.Unavailable, "meeting state store (Redis) unavailable")
	}
	if res == assignFull {
		return reject("at capacity: MC_MAX_MEETINGS reached")
	}
	if res == assignHeldElsewhere {
		return reject("held by another meeting controller: GC must name it as previous_controller_id to move the meeting")
	}
	if n, err := s.store.meetings(ctx); err == nil {
		s.setMeetings(n)
	}
	s.m.assignments.WithLabelValues(statusAccepted).Inc()
	s.log.Info("meeting assigned", "meeting_id", mid, "requesting_gc_id", by, "already_assigned", res == assignExisting)
	return &pb.AssignMeetingResponse{Accepted: true}, nil
}
