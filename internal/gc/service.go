package gc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/logging"
)

// AuthRules is what each GlobalControllerService method demands of the
// caller's token (SPEC section 4); grpcserver.New enforces it.
func AuthRules() map[string]auth.Requirement {
	mc := auth.Requirement{Scope: auth.ScopeWriteGC, ServiceTypes: []string{auth.ServiceMeetingController}}
	return map[string]auth.Requirement{
		internalv1.GlobalControllerService_RegisterMC_FullMethodName:             mc,
		internalv1.GlobalControllerService_FastHeartbeat_FullMethodName:          mc,
		internalv1.GlobalControllerService_ComprehensiveHeartbeat_FullMethodName: mc,
		internalv1.GlobalControllerService_DeregisterMC_FullMethodName:           mc,
		internalv1.GlobalControllerService_ListMeetingControllers_FullMethodName: {Scope: auth.ScopeReadGC},
	}
}

// Service implements GlobalControllerService over the Postgres registry.
type Service struct {
	internalv1.UnimplementedGlobalControllerServiceServer
	store   *Store
	metrics *Metrics
	log     *slog.Logger
	fastMS  uint32
	compMS  uint32
}

// NewService builds the gRPC service; the intervals are what RegisterMC
// tells each controller to use.
func NewService(store *Store, m *Metrics, log *slog.Logger, fast, comprehensive time.Duration) *Service {
	return &Service{store: store, metrics: m, log: log,
		fastMS: uint32(fast.Milliseconds()), compMS: uint32(comprehensive.Milliseconds())}
}

// dbError logs the cause and answers without leaking SQL details.
func (s *Service) dbError(ctx context.Context, op, id string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	s.log.Error(op+" failed", "controller_id", id, "error", err)
	return status.Errorf(codes.Unavailable, "%s: registry database unavailable", op)
}

func (s *Service) RegisterMC(ctx context.Context, r *internalv1.RegisterMCRequest) (*internalv1.RegisterMCResponse, error) {
	if err := validateRegister(r); err != nil {
		s.metrics.registrations.WithLabelValues("invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	c := Controller{
		ID: r.GetId(), Region: r.GetRegion(),
		GRPCEndpoint: r.GetGrpcEndpoint(), WebTransportEndpoint: r.GetWebtransportEndpoint(),
		CertSHA256:  r.GetWebtransportCertSha256(),
		MaxMeetings: int32(r.GetMaxMeetings()), MaxParticipants: int32(r.GetMaxParticipants()),
	}
	if err := s.store.Register(ctx, c); err != nil {
		s.metrics.registrations.WithLabelValues("error").Inc()
		return nil, s.dbError(ctx, "RegisterMC", c.ID, err)
	}
	s.metrics.registrations.WithLabelValues("ok").Inc()
	s.log.Info("meeting controller registered", "controller_id", c.ID, "region", c.Region,
		"grpc_endpoint", c.GRPCEndpoint, "webtransport_endpoint", c.WebTransportEndpoint)
	return &internalv1.RegisterMCResponse{
		Accepted: true, Message: "registered as pending until the first heartbeat",
		FastHeartbeatIntervalMs: s.fastMS, ComprehensiveHeartbeatIntervalMs: s.compMS,
	}, nil
}

// heartbeat is the path both heartbeat kinds share: validate, one UPDATE.
func (s *Service) heartbeat(ctx context.Context, kind, id string, c *internalv1.Capacity, h internalv1.HealthStatus) (*timestamppb.Timestamp, error) {
	health, err := validateHeartbeat(id, c, h)
	if err != nil {
		s.metrics.heartbeats.WithLabelValues(kind, "invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	err = s.store.Heartbeat(ctx, id, c, health)
	switch {
	case errors.Is(err, ErrNotFound):
		s.metrics.heartbeats.WithLabelValues(kind, "not_found").Inc()
		return nil, status.Errorf(codes.NotFound, "controller_id %q is not registered; call RegisterMC", id)
	case err != nil:
		s.metrics.heartbeats.WithLabelValues(kind, "error").Inc()
		return nil, s.dbError(ctx, kind+" heartbeat", id, err)
	}
	s.metrics.heartbeats.WithLabelValues(kind, "ok").Inc()
	return timestamppb.Now(), nil
}

func (s *Service) FastHeartbeat(ctx context.Context, r *internalv1.FastHeartbeatRequest) (*internalv1.FastHeartbeatResponse, error) {
	ts, err := s.heartbeat(ctx, "fast", r.GetControllerId(), r.GetCapacity(), r.GetHealth())
	if err != nil {
		return nil, err
	}
	return &internalv1.FastHeartbeatResponse{Acknowledged: true, Timestamp: ts}, nil
}

// ComprehensiveHeartbeat stores what FastHeartbeat stores; the schema has no
// columns for CPU and memory, so they are validated and logged at debug only.
func (s *Service) ComprehensiveHeartbeat(ctx context.Context, r *internalv1.ComprehensiveHeartbeatRequest) (*internalv1.ComprehensiveHeartbeatResponse, error) {
	for _, p := range []struct {
		field string
		v     float64
	}{{"cpu_usage_percent", r.GetCpuUsagePercent()}, {"memory_usage_percent", r.GetMemoryUsagePercent()}} {
		if err := checkPercent(p.field, p.v); err != nil {
			s.metrics.heartbeats.WithLabelValues("comprehensive", "invalid").Inc()
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	ts, err := s.heartbeat(ctx, "comprehensive", r.GetControllerId(), r.GetCapacity(), r.GetHealth())
	if err != nil {
		return nil, err
	}
	s.log.Debug("comprehensive heartbeat", "controller_id", r.GetControllerId(),
		"cpu_usage_percent", r.GetCpuUsagePercent(), "memory_usage_percent", r.GetMemoryUsagePercent())
	return &internalv1.ComprehensiveHeartbeatResponse{Acknowledged: true, Timestamp: ts}, nil
}

// DeregisterMC marks the controller draining (the sweeper removes it once
// stale) and ends its assignments. Deregistering an id that is already gone
// is acknowledged too: the caller's goal, leaving the healthy set, holds.
func (s *Service) DeregisterMC(ctx context.Context, r *internalv1.DeregisterMCRequest) (*internalv1.DeregisterMCResponse, error) {
	if err := checkID("controller_id", r.GetControllerId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	existed, err := s.store.Deregister(ctx, r.GetControllerId())
	if err != nil {
		return nil, s.dbError(ctx, "DeregisterMC", r.GetControllerId(), err)
	}
	s.metrics.deregistered.Inc()
	s.log.Info("meeting controller deregistered", "controller_id", r.GetControllerId(), "reason", logging.Bound(r.GetReason()), "existed", existed)
	return &internalv1.DeregisterMCResponse{Acknowledged: true}, nil
}

func (s *Service) ListMeetingControllers(ctx context.Context, r *internalv1.ListMeetingControllersRequest) (*internalv1.ListMeetingControllersResponse, error) {
	if err := validateList(r); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	cs, err := s.store.List(ctx, r.GetRegion(), r.GetHealth())
	if err != nil {
		return nil, s.dbError(ctx, "ListMeetingControllers", "", err)
	}
	out := make([]*internalv1.MeetingController, len(cs))
	for i, c := range cs {
		out[i] = c.proto()
	}
	return &internalv1.ListMeetingControllersResponse{Controllers: out}, nil
}

func (c Controller) proto() *internalv1.MeetingController {
	return &internalv1.MeetingController{
		Id: c.ID, Region: c.Region, GrpcEndpoint: c.GRPCEndpoint, WebtransportEndpoint: c.WebTransportEndpoint,
		WebtransportCertSha256: c.CertSHA256, Health: c.Health,
		Capacity: &internalv1.Capacity{
			MaxMeetings: uint32(c.MaxMeetings), CurrentMeetings: uint32(c.CurrentMeetings),
			MaxParticipants: uint32(c.MaxParticipants), CurrentParticipants: uint32(c.CurrentParticipants),
		},
		RegisteredAt:    timestamppb.New(c.RegisteredAt),
		LastHeartbeatAt: timestamppb.New(c.LastHeartbeatAt),
	}
}
