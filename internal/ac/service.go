// Package ac is the auth controller: it keeps the service clients of the
// clients file in Postgres (secrets bcrypt-hashed), issues client-credentials
// tokens signed with the shared Ed25519 key, and publishes that key's JWKS.
package ac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/httpserver"
)

// Options configure a Service.
type Options struct {
	Pool     *pgxpool.Pool // may be unreachable at first; readiness says so
	Signer   *auth.Signer
	TokenTTL time.Duration
	Log      *slog.Logger
	Registry *prometheus.Registry
}

// Service serves AC's HTTP API.
type Service struct {
	pool      *pgxpool.Pool
	signer    *auth.Signer
	ttl       time.Duration
	log       *slog.Logger
	reg       *prometheus.Registry
	issued    *prometheus.CounterVec
	duration  prometheus.Histogram
	dummyHash []byte
	synced    atomic.Bool
	self      *auth.Validator // AC's own keys: validates GC's token for meeting tokens
}

// Token outcomes, the status label of ac_token_issuance_total.
const (
	statusSuccess       = "success"
	statusInvalidClient = "invalid_client"
	statusInvalidReq    = "invalid_request"
	statusBadGrant      = "unsupported_grant_type"
	statusError         = "error"
)

// New builds the service and registers its metrics on opts.Registry.
func New(opts Options) (*Service, error) {
	if opts.Signer == nil || opts.Pool == nil || opts.Log == nil || opts.Registry == nil {
		return nil, errors.New("ac: Pool, Signer, Log and Registry are required")
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	// Unknown clients are checked against this hash so they take as long
	// as a wrong secret and do not reveal which client ids exist.
	dummy, err := bcrypt.GenerateFromPassword([]byte("dark-tower-ac-no-such-client"), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	self, err := auth.NewStaticValidator(opts.Signer.JWKS())
	if err != nil {
		return nil, err
	}
	s := &Service{
		pool: opts.Pool, signer: opts.Signer, ttl: opts.TokenTTL, log: opts.Log, reg: opts.Registry,
		dummyHash: dummy, self: self,
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ac_token_issuance_total",
			Help: "Token requests by outcome.",
		}, []string{"status"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ac_token_issuance_duration_seconds",
			Help:    "Time to answer a token request, including the bcrypt check.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, st := range []string{statusSuccess, statusInvalidClient, statusInvalidReq, statusBadGrant, statusError} {
		s.issued.WithLabelValues(st) // export zeros so dashboards and alerts see every series
	}
	if err := opts.Registry.Register(s.issued); err != nil {
		return nil, err
	}
	if err := opts.Registry.Register(s.duration); err != nil {
		return nil, err
	}
	return s, nil
}

// Sync stores the clients in the database once. Token requests are answered
// only after the first successful sync.
func (s *Service) Sync(ctx context.Context, clients []Client) error {
	res, err := SyncClients(ctx, s.pool, clients)
	if err != nil {
		return err
	}
	s.synced.Store(true)
	s.log.Info("service clients synced", "clients", len(clients), "created", res.Created,
		"rehashed", res.Rehashed, "updated", res.Updated, "unchanged", res.Unchanged, "deactivated", res.Deactivated)
	return nil
}

// SyncWithRetry retries Sync until it succeeds or ctx ends: at start the
// database may be unreachable or not migrated yet (db-migrate runs beside AC).
func (s *Service) SyncWithRetry(ctx context.Context, clients []Client, target string) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Sync(actx, clients)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("cannot sync service clients yet, retrying", "target", target, "error", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// maxTokenBody bounds a token request body; real ones are a few hundred bytes.
const maxTokenBody = 16 << 10

// Handler returns the HTTP API: token, JWKS, health, readiness, metrics.
func (s *Service) Handler() http.Handler {
	in := httpserver.NewInstrumenter("ac", s.reg)
	mux := http.NewServeMux()
	mux.Handle("POST "+auth.TokenPath, in.Wrap("token", http.HandlerFunc(s.token)))
	mux.Handle("POST "+auth.MeetingTokenPath, in.Wrap("meeting_token", http.HandlerFunc(s.meetingToken)))
	mux.Handle("GET "+auth.JWKSPath, in.Wrap("jwks", http.HandlerFunc(s.jwks)))

	probes := http.NewServeMux()
	httpserver.Probes(probes, "/health", "/ready", s.ready)
	mux.Handle("GET /health", in.Wrap("health", probes))
	mux.Handle("GET /ready", in.Wrap("ready", probes))
	metrics := http.NewServeMux()
	httpserver.Metrics(metrics, s.reg)
	mux.Handle("GET /metrics", in.Wrap("metrics", metrics))
	return mux
}

func (s *Service) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.signer.JWKS())
}

// ready: the signing key is loaded, the clients are synced and the database
// answers now.
func (s *Service) ready(ctx context.Context) error {
	if s.signer == nil || len(s.signer.JWKS()) == 0 {
		return errors.New("signing key not loaded")
	}
	if !s.synced.Load() {
		return errors.New("service clients not synced to the database yet")
	}
	if err := s.pool.Ping(ctx); err != nil {
		cc := s.pool.Config().ConnConfig
		return fmt.Errorf("database %s:%d/%s unreachable: %w", cc.Host, cc.Port, cc.Database, err)
	}
	return nil
}
