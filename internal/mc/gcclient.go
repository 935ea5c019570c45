package mc

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/darktower/devstack/gen/internalv1"
)

// Used when GC answers RegisterMC without intervals.
const (
	defaultFastInterval          = 10 * time.Second
	defaultComprehensiveInterval = 30 * time.Second
)

// redisCheckTimeout bounds the Redis read behind each heartbeat.
const redisCheckTimeout = time.Second

// runGCLoop registers with GC, retrying with capped exponential backoff and
// jitter so MC rides out GC and AC restarts, then heartbeats at the intervals
// GC returned. A heartbeat answered NOT_FOUND (GC lost or pruned our row)
// starts registration again. It returns when ctx ends.
func (s *Server) runGCLoop(ctx context.Context) {
	for ctx.Err() == nil {
		fast, comp, ok := s.registerUntilAccepted(ctx)
		if !ok {
			return
		}
		s.heartbeatUntilNotFound(ctx, fast, comp)
	}
}

func (s *Server) registerUntilAccepted(ctx context.Context) (fast, comp time.Duration, ok bool) {
	req := &pb.RegisterMCRequest{
		Id:                     s.cfg.ID,
		Region:                 s.cfg.Region,
		GrpcEndpoint:           s.cfg.GRPCAdvertise,
		WebtransportEndpoint:   s.cfg.WTAdvertise,
		MaxMeetings:            uint32(s.cfg.MaxMeetings),
		MaxParticipants:        uint32(s.cfg.MaxParticipants),
		WebtransportCertSha256: s.cert.sha256,
	}
	for attempt := 0; ; attempt++ {
		// Re-registering (GC lost the row, or answered NOT_FOUND) presents
		// the key of the registration we held.
		req.RegistrationKey = s.key()
		// GC places meetings on a registered MC at once; one that cannot
		// check GC's token yet would refuse them all. The keys' refresh has
		// a deadline of its own: sharing RegisterMC's could leave GC holding
		// a registration whose key never reached us.
		kctx, kcancel := context.WithTimeout(ctx, s.cfg.RPCTimeout)
		keysErr := s.keysReady(kctx)
		kcancel()
		var resp *pb.RegisterMCResponse
		var err error
		if keysErr == nil {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.RPCTimeout)
			resp, err = s.gc.RegisterMC(rctx, req)
			cancel()
		}
		if ctx.Err() != nil {
			return 0, 0, false
		}
		delay := backoff(attempt, s.cfg.RegisterBackoffMin, s.cfg.RegisterBackoffMax)
		switch {
		case keysErr != nil:
			s.log.Warn("not registering with GC yet: AC's keys, needed to check GC's calls, have not arrived",
				"attempt", attempt+1, "retry_in", delay.String(), "error", keysErr)
		case err != nil:
			s.renewTokenOn(err)
			s.m.registrations.WithLabelValues(statusError).Inc()
			s.log.Warn("registering with GC failed; retrying", "gc_target", s.cfg.GCTarget,
				"attempt", attempt+1, "retry_in", delay.String(), "error", err)
		case !resp.GetAccepted():
			s.m.registrations.WithLabelValues(statusRejected).Inc()
			s.log.Warn("GC refused the registration; retrying", "gc_target", s.cfg.GCTarget,
				"attempt", attempt+1, "retry_in", delay.String(), "gc_message", resp.GetMessage())
		default:
			key := resp.GetRegistrationKey()
			s.regKey.Store(&key)
			s.m.registrations.WithLabelValues(statusOK).Inc()
			fast = msOr(resp.GetFastHeartbeatIntervalMs(), defaultFastInterval)
			comp = msOr(resp.GetComprehensiveHeartbeatIntervalMs(), defaultComprehensiveInterval)
			s.setRegistered(true)
			s.log.Info("registered with GC", "gc_target", s.cfg.GCTarget, "controller_id", s.cfg.ID,
				"region", s.cfg.Region, "grpc_endpoint", s.cfg.GRPCAdvertise,
				"webtransport_endpoint", s.cfg.WTAdvertise, "webtransport_cert_sha256", s.cert.sha256,
				"fast_heartbeat_interval", fast.String(), "comprehensive_heartbeat_interval", comp.String())
			return fast, comp, true
		}
		select {
		case <-ctx.Done():
			return 0, 0, false
		case <-time.After(delay):
		}
	}
}

// heartbeatUntilNotFound sends a fast heartbeat at once (so GC moves the row
// from PENDING to what MC reports) and then on both tickers.
func (s *Server) heartbeatUntilNotFound(ctx context.Context, fast, comp time.Duration) {
	ft := time.NewTicker(fast)
	defer ft.Stop()
	ct := time.NewTicker(comp)
	defer ct.Stop()
	kind := hbFast
	for {
		switch s.heartbeat(ctx, kind) {
		case codes.NotFound:
			s.setRegistered(false)
			s.log.Warn("GC does not know this controller; registering again", "gc_target", s.cfg.GCTarget, "controller_id", s.cfg.ID)
			return
		case codes.PermissionDenied:
			// Our registration went stale and another process took the id;
			// registering again succeeds once that one is gone.
			s.setRegistered(false)
			s.log.Warn("GC says another registration holds this id; registering again", "gc_target", s.cfg.GCTarget, "controller_id", s.cfg.ID)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ft.C:
			kind = hbFast
		case <-ct.C:
			kind = hbComprehensive
		}
	}
}

// heartbeat sends one heartbeat of kind and returns its gRPC code. Errors are
// counted and logged; only NOT_FOUND changes what the caller does.
func (s *Server) heartbeat(ctx context.Context, kind string) codes.Code {
	capacity, health := s.report(ctx)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RPCTimeout)
	defer cancel()
	var err error
	if kind == hbFast {
		_, err = s.gc.FastHeartbeat(rctx, &pb.FastHeartbeatRequest{
			ControllerId: s.cfg.ID, Capacity: capacity, Health: health, RegistrationKey: s.key(),
		})
	} else {
		cpu, mem := s.proc.sample()
		_, err = s.gc.ComprehensiveHeartbeat(rctx, &pb.ComprehensiveHeartbeatRequest{
			ControllerId: s.cfg.ID, Capacity: capacity, Health: health, RegistrationKey: s.key(),
			CpuUsagePercent: cpu, MemoryUsagePercent: mem,
		})
	}
	code := status.Code(err)
	switch {
	case err == nil:
		s.m.heartbeats.WithLabelValues(kind, statusOK).Inc()
		s.log.Debug("heartbeat sent", "type", kind, "health", health.String(), "current_meetings", capacity.GetCurrentMeetings())
	case code == codes.NotFound:
		s.m.heartbeats.WithLabelValues(kind, statusNotFound).Inc()
	case ctx.Err() != nil:
		// Shutting down: the drain sends its own heartbeat.
	default:
		s.renewTokenOn(err)
		s.m.heartbeats.WithLabelValues(kind, statusError).Inc()
		s.log.Warn("heartbeat to GC failed", "type", kind, "gc_target", s.cfg.GCTarget, "error", err)
	}
	return code
}

// report is the capacity and health a heartbeat carries. The meeting count
// comes from Redis (the last value if Redis does not answer); open WebTransport
// sessions count as participants. Health is DRAINING once shutdown began,
// DEGRADED while Redis (where meeting state lives) does not answer, HEALTHY
// otherwise. Redis gets its own short deadline so an outage cannot use up the
// heartbeat's RPC timeout.
func (s *Server) report(ctx context.Context) (*pb.Capacity, pb.HealthStatus) {
	health := pb.HealthStatus_HEALTH_STATUS_HEALTHY
	rctx, cancel := context.WithTimeout(ctx, redisCheckTimeout)
	defer cancel()
	// Ended meetings leave the count first; after a restart (once) the
	// meetings no session holds any more get the grace to end.
	expire := time.Duration(0)
	if !s.pruned.Load() {
		expire = s.cfg.MeetingGrace
	}
	if _, err := s.store.prune(rctx, expire); err == nil {
		s.pruned.Store(true)
	}
	if n, err := s.store.meetings(rctx); err == nil {
		s.setMeetings(n)
	} else {
		health = pb.HealthStatus_HEALTH_STATUS_DEGRADED
		s.log.Warn("reading meeting count from Redis failed; reporting DEGRADED", "redis", s.redisAddr, "error", err)
	}
	if s.draining.Load() {
		health = pb.HealthStatus_HEALTH_STATUS_DRAINING
	}
	return &pb.Capacity{
		MaxMeetings:         uint32(s.cfg.MaxMeetings),
		CurrentMeetings:     uint32(s.meetings.Load()),
		MaxParticipants:     uint32(s.cfg.MaxParticipants),
		CurrentParticipants: uint32(s.sessions.count()),
	}, health
}

// renewTokenOn drops the cached token when GC did not accept it.
func (s *Server) renewTokenOn(err error) {
	if status.Code(err) == codes.Unauthenticated {
		s.log.Warn("GC refused MC's token; fetching a new one from AC", "ac", s.cfg.ACInternalURL)
		s.tokens.renew()
	}
}

// key is the registration key of the last accepted RegisterMC, or "".
func (s *Server) key() string {
	if k := s.regKey.Load(); k != nil {
		return *k
	}
	return ""
}

func (s *Server) setRegistered(v bool) {
	s.registered.Store(v)
	if v {
		s.m.registered.Set(1)
	} else {
		s.m.registered.Set(0)
	}
}

func (s *Server) setMeetings(n int64) {
	s.meetings.Store(n)
	s.m.activeMeetings.Set(float64(n))
}

// backoff is min*2^attempt capped at max, with "equal jitter": a random point
// in the upper half, so restarted replicas do not retry in lockstep.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := max
	if attempt < 30 {
		if e := min << attempt; e > 0 && e < max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

func msOr(ms uint32, def time.Duration) time.Duration {
	if ms == 0 {
		return def
	}
	return time.Duration(ms) * time.Millisecond
}
