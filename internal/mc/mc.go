package mc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/webtransport-go"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/grpcserver"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/metrics"
)

// Server is one meeting controller process.
type Server struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	m         *mcMetrics
	cert      *serverCert
	rdb       *redis.Client
	redisAddr string
	store     *store
	gc        pb.GlobalControllerServiceClient
	gcConn    *grpc.ClientConn
	tokens    *renewableTokens
	proc      *procStats
	sessions  *sessionSet

	// keysReady reports whether AC's keys have arrived: without them MC
	// cannot check GC's AssignMeeting calls, so it neither registers nor
	// reports ready.
	keysReady func(context.Context) error

	registered atomic.Bool
	// regKey is the registration key GC returned: the proof, presented on
	// every heartbeat, re-registration and DeregisterMC, that this process
	// holds its id (all MCs share one client credential).
	regKey atomic.Pointer[string]
	pruned atomic.Bool // meetings left from before this process got their grace
	// participants counts open sessions per meeting: the first holds the
	// meeting in Redis, the last one leaving starts its grace.
	partMu       sync.Mutex
	participants map[string]int
	draining     atomic.Bool
	meetings     atomic.Int64
}

// Run is the whole binary after configuration (config.Main calls it):
// prepare the controller, then serve and drain as Server.Run does.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	// quic-go and webtransport-go write through the standard log package;
	// route that into the JSON logger.
	slog.SetDefault(log)
	srv, err := New(cfg, log)
	if err != nil {
		return fmt.Errorf("cannot start: %w", err)
	}
	return srv.Run(ctx)
}

// New prepares the controller: TLS certificate, Redis client and GC client.
// Nothing is dialled yet; Run listens and serves.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cert, err := loadOrGenerateCert(cfg.TLSCertFile, cfg.TLSKeyFile, advertisedHost(cfg.WTAdvertise))
	if err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(cfg.RedisURL.Reveal())
	if err != nil {
		return nil, errors.New("REDIS_URL: not a valid redis:// URL (the value is not shown)")
	}
	// Fail fast while Redis is down: readiness and heartbeats report it, and
	// GC retries assignments elsewhere, so long client-side retries only hide it.
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = time.Second, 2*time.Second, 2*time.Second
	ropts.MaxRetries, ropts.DialerRetries = 1, 1
	rdb := redis.NewClient(ropts)
	redis.SetLogger(redisLogger{log})

	ts := &renewableTokens{newSource: func() oauth2.TokenSource {
		return auth.TokenSource(context.Background(), cfg.ACInternalURL, cfg.ClientID, cfg.ClientSecret)
	}}
	ts.renew()
	// dns:/// re-resolves the Service name when the connection breaks.
	conn, err := grpc.NewClient("dns:///"+cfg.GCTarget,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.PerRPC(ts)))
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("GC client for %s: %w", cfg.GCTarget, err)
	}

	reg := metrics.NewRegistry()
	s := &Server{
		cfg: cfg, log: log, reg: reg, m: newMetrics(reg), cert: cert,
		rdb: rdb, redisAddr: ropts.Addr, store: &store{rdb: rdb, id: cfg.ID},
		gc: pb.NewGlobalControllerServiceClient(conn), gcConn: conn, tokens: ts,
		proc: newProcStats(),
	}
	s.sessions = &sessionSet{m: map[*webtransport.Session]struct{}{}, onSize: func(n int) { s.m.activeSessions.Set(float64(n)) }}
	s.participants = map[string]int{}
	return s, nil
}

// CertSHA256 is the hex SHA-256 of the WebTransport certificate.
func (s *Server) CertSHA256() string { return s.cert.sha256 }

// Run serves until ctx ends, then drains: readiness turns 503 at once, a
// DRAINING heartbeat and DeregisterMC go to GC, and the gRPC, WebTransport and
// HTTP servers stop, all within ShutdownGrace. It returns nil after a clean
// drain and an error when a listener cannot be opened or a server fails.
func (s *Server) Run(ctx context.Context) error {
	defer s.gcConn.Close()
	defer s.rdb.Close()

	grpcLn, err := net.Listen("tcp", s.cfg.GRPCBind)
	if err != nil {
		return fmt.Errorf("gRPC listener on %s: %w", s.cfg.GRPCBind, err)
	}
	defer grpcLn.Close()
	httpLn, err := net.Listen("tcp", s.cfg.HealthBind)
	if err != nil {
		return fmt.Errorf("health listener on %s: %w", s.cfg.HealthBind, err)
	}
	defer httpLn.Close()
	udp, err := net.ListenPacket("udp", s.cfg.WebTransportBind)
	if err != nil {
		return fmt.Errorf("WebTransport UDP listener on %s: %w", s.cfg.WebTransportBind, err)
	}
	defer udp.Close()

	// Lives until Run returns, so tokens still validate while draining.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	validator, err := auth.NewValidator(life, s.cfg.ACJWKSURL, s.log)
	if err != nil {
		return err
	}

	gs := grpcserver.New(validator, grpcRules(s.cfg.ID), s.reg)
	pb.RegisterMeetingControllerServiceServer(gs, assignService{s: s})
	wt := s.newWebTransportServer(validator)
	mux := http.NewServeMux()
	s.keysReady = validator.Ready
	httpserver.Probes(mux, "/health/live", "/health/ready", s.readyNotDraining, s.readyRegistered, s.readyRedis, validator.Ready)
	httpserver.Metrics(mux, s.reg)

	s.log.Info("meeting controller starting", "controller_id", s.cfg.ID, "region", s.cfg.Region,
		"grpc_bind", s.cfg.GRPCBind, "health_bind", s.cfg.HealthBind, "webtransport_bind", s.cfg.WebTransportBind,
		"grpc_endpoint", s.cfg.GRPCAdvertise, "webtransport_endpoint", s.cfg.WTAdvertise,
		"webtransport_cert_sha256", s.cert.sha256, "webtransport_cert_self_signed", s.cert.selfSigned,
		"webtransport_cert_not_after", s.cert.notAfter.UTC().Format(time.RFC3339),
		"gc_target", s.cfg.GCTarget, "redis", s.redisAddr, "max_meetings", s.cfg.MaxMeetings)
	if !s.cert.selfSigned && time.Until(s.cert.notAfter) > 14*24*time.Hour {
		s.log.Warn("the WebTransport certificate is valid for more than 14 days; browsers will not accept it through serverCertificateHashes")
	}

	errc := make(chan error, 3)
	grpcCtx, stopGRPC := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGRPC()
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHTTP()
	var servers sync.WaitGroup
	servers.Go(func() {
		if err := gs.Serve(grpcCtx, grpcLn, s.cfg.ShutdownGrace/3); err != nil {
			errc <- fmt.Errorf("gRPC server on %s: %w", s.cfg.GRPCBind, err)
		}
	})
	servers.Go(func() {
		if err := httpserver.Serve(httpCtx, httpLn, mux, s.cfg.ShutdownGrace/6, s.log); err != nil {
			errc <- fmt.Errorf("health server on %s: %w", s.cfg.HealthBind, err)
		}
	})
	var wtStopped atomic.Bool
	servers.Go(func() {
		if err := wt.Serve(udp); err != nil && !wtStopped.Load() {
			errc <- fmt.Errorf("WebTransport server on %s: %w", s.cfg.WebTransportBind, err)
		}
	})
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	var loop sync.WaitGroup
	loop.Go(func() { s.runGCLoop(loopCtx) })

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutdown requested; draining", "grace", s.cfg.ShutdownGrace.String())
	case runErr = <-errc:
		s.log.Error("server failed; draining", "error", runErr)
	}

	start := time.Now()
	s.draining.Store(true) // readiness answers 503 from here on
	s.m.draining.Set(1)
	stopLoop()
	loop.Wait()
	s.leaveGC(context.WithoutCancel(ctx))
	stopGRPC()
	s.sessions.closeAll(s.cfg.ShutdownGrace / 6)
	wtStopped.Store(true)
	_ = wt.Close()
	stopHTTP()
	servers.Wait()
	s.log.Info("meeting controller stopped", "drain_duration", time.Since(start).String())
	return runErr
}

// leaveGC reports DRAINING and deregisters, spending at most a third of the
// grace period so the servers still have time to stop.
func (s *Server) leaveGC(ctx context.Context) {
	if !s.registered.Load() {
		s.log.Warn("not registered with GC; nothing to deregister", "gc_target", s.cfg.GCTarget)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownGrace/3)
	defer cancel()
	if code := s.heartbeat(ctx, hbFast); code != codes.OK {
		s.log.Warn("DRAINING heartbeat was not acknowledged", "gc_target", s.cfg.GCTarget, "code", code.String())
	} else {
		s.log.Info("reported DRAINING to GC", "gc_target", s.cfg.GCTarget)
	}
	rctx, rcancel := context.WithTimeout(ctx, s.cfg.RPCTimeout)
	defer rcancel()
	_, err := s.gc.DeregisterMC(rctx, &pb.DeregisterMCRequest{ControllerId: s.cfg.ID, Reason: "draining: shutdown requested (SIGTERM)", RegistrationKey: s.key()})
	if err != nil {
		s.log.Warn("DeregisterMC failed", "gc_target", s.cfg.GCTarget, "error", err)
		return
	}
	s.setRegistered(false)
	s.log.Info("deregistered from GC", "gc_target", s.cfg.GCTarget, "controller_id", s.cfg.ID)
}

func (s *Server) readyNotDraining(context.Context) error {
	if s.draining.Load() {
		return errors.New("draining")
	}
	return nil
}

func (s *Server) readyRegistered(context.Context) error {
	if !s.registered.Load() {
		return errors.New("not registered with GC")
	}
	return nil
}

func (s *Server) readyRedis(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", s.redisAddr, err)
	}
	return nil
}

// redisLogger routes go-redis's internal messages into the JSON log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client: "+fmt.Sprintf(format, v...), "redis_client", true)
}

// renewableTokens is AC's cached client-credentials token that can be dropped
// when GC refuses it (UNAUTHENTICATED), so MC fetches a fresh one instead of
// retrying with the cached token until it expires.
type renewableTokens struct {
	mu        sync.Mutex
	newSource func() oauth2.TokenSource
	ts        oauth2.TokenSource
}

func (r *renewableTokens) Token() (*oauth2.Token, error) {
	r.mu.Lock()
	ts := r.ts
	r.mu.Unlock()
	return ts.Token()
}

func (r *renewableTokens) renew() {
	r.mu.Lock()
	r.ts = r.newSource()
	r.mu.Unlock()
}
