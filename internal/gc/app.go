// Package gc is the global controller: the meeting-controller registry in
// Postgres, its gRPC service, the staleness sweeper, and the HTTP API that
// lists controllers and places meetings on them.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/darktower/devstack/gen/internalv1"
	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/database"
	"github.com/darktower/devstack/internal/grpcserver"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/metrics"
)

// App is one GC replica wired together.
type App struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	store     *Store
	metrics   *Metrics
	validator *auth.Validator
	joiner    *joiner
	joinLimit *joinLimiter
	// meetingToken asks AC for a meeting token (AC signs; GC never holds a key).
	meetingToken func(ctx context.Context, meetingID, participant, controllerID string) (string, error)
	GRPC         *grpcserver.Server
	HTTP         http.Handler
}

// tokenCacheTTL is how long a validated caller token is remembered: each MC
// reuses its one-hour token for every heartbeat, and checking the signature
// anew each time was the largest cost of the heartbeat path.
const tokenCacheTTL = time.Minute

// New builds a replica on pool; ctx bounds GC's own token source. It turns
// on v's validated-token cache.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, v *auth.Validator, reg *prometheus.Registry, log *slog.Logger) *App {
	v.CacheValidTokens(tokenCacheTTL)
	store := NewStore(pool)
	m := NewMetrics(reg, store, log)
	a := &App{cfg: cfg, log: log, reg: reg, store: store, metrics: m, validator: v}
	general := auth.TokenSource(context.WithoutCancel(ctx), cfg.ACInternalURL, cfg.ClientID, cfg.ClientSecret)
	a.meetingToken = func(ctx context.Context, meetingID, participant, controllerID string) (string, error) {
		return auth.RequestMeetingToken(ctx, cfg.ACInternalURL, general, meetingID, participant, controllerID)
	}
	tokens := func(controllerID string) credentials.PerRPCCredentials {
		return auth.PerRPC(auth.AudienceTokenSource(context.WithoutCancel(ctx), cfg.ACInternalURL, cfg.ClientID, cfg.ClientSecret, controllerID))
	}
	a.joiner = &joiner{store: store, tokens: tokens, gcID: cfg.ID, threshold: cfg.StalenessThreshold,
		log: log, conns: map[string]*grpc.ClientConn{}, creds: map[string]credentials.PerRPCCredentials{}}
	a.joinLimit = newJoinLimiter(cfg.JoinInterval, cfg.JoinBurst, cfg.JoinMaxCallers)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gc_join_limiter_callers",
		Help: "Callers whose join rate this replica tracks (at most GC_JOIN_MAX_CALLERS).",
	}, func() float64 { return float64(a.joinLimit.tracked()) }))
	a.GRPC = grpcserver.New(v, AuthRules(), reg)
	internalv1.RegisterGlobalControllerServiceServer(a.GRPC, NewService(store, m, log, cfg.FastHeartbeat, cfg.ComprehensiveInterval, cfg.StalenessThreshold))
	a.HTTP = a.routes()
	return a
}

// Serve runs the gRPC server, the HTTP server and the sweeper until ctx
// ends, then shuts down gracefully: gRPC health turns NOT_SERVING, new RPCs
// are refused and those in flight finish; HTTP requests in flight finish.
func (a *App) Serve(ctx context.Context, grpcLn, httpLn net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		if errs[0] = a.GRPC.Serve(ctx, grpcLn, a.cfg.ShutdownGrace); errs[0] != nil {
			errs[0] = fmt.Errorf("gRPC server on %s: %w", grpcLn.Addr(), errs[0])
		}
		cancel()
	})
	wg.Go(func() {
		if errs[1] = httpserver.Serve(ctx, httpLn, a.HTTP, a.cfg.ShutdownGrace, a.log); errs[1] != nil {
			errs[1] = fmt.Errorf("HTTP server on %s: %w", httpLn.Addr(), errs[1])
		}
		cancel()
	})
	wg.Go(func() { a.sweep(ctx) })
	a.log.Info("global controller serving", "grpc", grpcLn.Addr().String(), "http", httpLn.Addr().String(),
		"region", a.cfg.Region, "gc_id", a.cfg.ID)
	wg.Wait()
	a.joiner.close()
	return errors.Join(errs...)
}

// Run is the whole binary after configuration (config.Main calls it): connect
// (lazily: GC serves /health while Postgres is down, /ready says 503), listen,
// serve until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	pool, err := database.Connect(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := auth.NewValidator(ctx, cfg.ACJWKSURL, log)
	if err != nil {
		return err
	}
	grpcLn, err := net.Listen("tcp", cfg.GRPCBindAddress)
	if err != nil {
		return fmt.Errorf("GC_GRPC_BIND_ADDRESS %s: %w", cfg.GRPCBindAddress, err)
	}
	httpLn, err := net.Listen("tcp", cfg.BindAddress)
	if err != nil {
		grpcLn.Close()
		return fmt.Errorf("BIND_ADDRESS %s: %w", cfg.BindAddress, err)
	}
	log.Info("starting", "version", Version, "database", database.Target(cfg.DatabaseURL.Reveal()), "jwks", cfg.ACJWKSURL,
		"ac", cfg.ACInternalURL, "staleness_threshold", cfg.StalenessThreshold.String())
	if err := New(ctx, cfg, pool, v, metrics.NewRegistry(), log).Serve(ctx, grpcLn, httpLn); err != nil {
		return err
	}
	log.Info("global controller stopped")
	return nil
}
