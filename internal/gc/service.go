package gc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
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
	store     *Store
	metrics   *Metrics
	log       *slog.Logger
	fastMS    uint32
	compMS    uint32
	threshold time.Duration // a registration older than this may be taken over
}

// NewService builds the gRPC service; the intervals are what RegisterMC
// tells each controller to use, threshold the staleness after which another
// caller may take a registration over.
func NewService(store *Store, m *Metrics, log *slog.Logger, fast, comprehensive, threshold time.Duration) *Service {
	return &Service{store: store, metrics: m, log: log, threshold: threshold,
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
	// All MCs share one client credential, so the token does not say which
	// MC calls. The endpoints must at least be the caller's own address:
	// no registration can point GC, or clients, at a third host.
	if err := checkSource(ctx, r); err != nil {
		s.metrics.registrations.WithLabelValues("denied").Inc()
		s.log.Warn("registration refused", "controller_id", r.GetId(), "reason", err.Error())
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	c := Controller{
		ID: r.GetId(), Region: r.GetRegion(),
		GRPCEndpoint: r.GetGrpcEndpoint(), WebTransportEndpoint: r.GetWebtransportEndpoint(),
		CertSHA256:  r.GetWebtransportCertSha256(),
		MaxMeetings: int32(r.GetMaxMeetings()), MaxParticipants: int32(r.GetMaxParticipants()),
	}
	key := rand.Text() // 26 base32 characters: 130 bits
	presented := ""
	if k := r.GetRegistrationKey(); k != "" {
		presented = HashKey(k)
	}
	err := s.store.Register(ctx, c, HashKey(key), presented, s.threshold)
	switch {
	case errors.Is(err, ErrHeld):
		s.metrics.registrations.WithLabelValues("denied").Inc()
		s.log.Warn("registration refused: the id is live and held by another registration", "controller_id", c.ID)
		return nil, status.Errorf(codes.PermissionDenied,
			"id %q is registered and live; present its registration_key, deregister it, or wait until its heartbeat is older than %s", c.ID, s.threshold)
	case err != nil:
		s.metrics.registrations.WithLabelValues("error").Inc()
		return nil, s.dbError(ctx, "RegisterMC", c.ID, err)
	}
	s.metrics.registrations.WithLabelValues("ok").Inc()
	s.log.Info("meeting controller registered", "controller_id", c.ID, "region", c.Region,
		"grpc_endpoint", c.GRPCEndpoint, "webtransport_endpoint", c.WebTransportEndpoint)
	return &internalv1.RegisterMCResponse{
		Accepted: true, Message: "registered as pending until the first heartbeat",
		FastHeartbeatIntervalMs: s.fastMS, ComprehensiveHeartbeatIntervalMs: s.compMS,
		RegistrationKey: key,
	}, nil
}

// checkSource demands that both advertised hosts are the IP address the
// request came from (the pod IP in a cluster, loopback in local mode).
func checkSource(ctx context.Context, r *internalv1.RegisterMCRequest) error {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return errors.New("the connection's source address is unknown")
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return fmt.Errorf("the connection's source address %s is not an IP address", p.Addr)
	}
	src := ap.Addr().Unmap()
	for _, f := range []struct{ field, v string }{{"grpc_endpoint", r.GetGrpcEndpoint()}, {"webtransport_endpoint", r.GetWebtransportEndpoint()}} {
		u, err := url.Parse(f.v)
		if err != nil {
			return fmt.Errorf("%s: not a URL", f.field)
		}
		ip, err := netip.ParseAddr(u.Hostname())
		if err != nil || ip.Unmap() != src {
			return fmt.Errorf("%s: host must be this connection's source address %s (advertise the pod IP, not a name or another host)", f.field, src)
		}
	}
	return nil
}

// heartbeat is the path both heartbeat kinds share: validate, one UPDATE.
func (s *Service) heartbeat(ctx context.Context, kind, id, key string, c *internalv1.Capacity, h internalv1.HealthStatus) (*timestamppb.Timestamp, error) {
	health, err := validateHeartbeat(id, c, h)
	if err == nil {
		err = checkKey(key)
	}
	if err != nil {
		s.metrics.heartbeats.WithLabelValues(kind, "invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	err = s.store.Heartbeat(ctx, id, HashKey(key), c, health)
	switch {
	case errors.Is(err, ErrNotFound):
		s.metrics.heartbeats.WithLabelValues(kind, "not_found").Inc()
		return nil, status.Errorf(codes.NotFound, "controller_id %q is not registered; call RegisterMC", id)
	case errors.Is(err, ErrHeld):
		s.metrics.heartbeats.WithLabelValues(kind, "denied").Inc()
		s.log.Warn("heartbeat refused: wrong registration key", "controller_id", id)
		return nil, status.Errorf(codes.PermissionDenied, "registration_key does not match the registration of %q", id)
	case err != nil:
		s.metrics.heartbeats.WithLabelValues(kind, "error").Inc()
		return nil, s.dbError(ctx, kind+" heartbeat", id, err)
	}
	s.metrics.heartbeats.WithLabelValues(kind, "ok").Inc()
	return timestamppb.Now(), nil
}

func (s *Service) FastHeartbeat(ctx context.Context, r *internalv1.FastHeartbeatRequest) (*internalv1.FastHeartbeatResponse, error) {
	ts, err := s.heartbeat(ctx, "fast", r.GetControllerId(), r.GetRegistrationKey(), r.GetCapacity(), r.GetHealth())
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
	ts, err := s.heartbeat(ctx, "comprehensive", r.GetControllerId(), r.GetRegistrationKey(), r.GetCapacity(), r.GetHealth())
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
	if err := checkKey(r.GetRegistrationKey()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	existed, err := s.store.Deregister(ctx, r.GetControllerId(), HashKey(r.GetRegistrationKey()))
	if errors.Is(err, ErrHeld) {
		s.log.Warn("deregistration refused: wrong registration key", "controller_id", r.GetControllerId())
		return nil, status.Errorf(codes.PermissionDenied, "registration_key does not match the registration of %q", r.GetControllerId())
	}
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
