// Package grpcserver builds the gRPC server GC and MC share: bearer-token
// auth, per-RPC Prometheus metrics, grpc.health.v1 and reflection.
package grpcserver

import (
	"context"
	"net"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/darktower/devstack/internal/auth"
)

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health  *health.Server
	metrics *grpcprom.ServerMetrics
}

// New builds a server that authorizes each method by rules and records
// grpc_server_* metrics on reg. Register services, then call Serve.
func New(v *auth.Validator, rules map[string]auth.Requirement, reg prometheus.Registerer) *Server {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
	))
	reg.MustRegister(m)
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor(), auth.UnaryServerInterceptor(v, rules)),
		grpc.ChainStreamInterceptor(m.StreamServerInterceptor(), auth.StreamServerInterceptor(v, rules)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return &Server{Server: s, Health: hs, metrics: m}
}

// Serve runs until ctx ends, then marks health NOT_SERVING, stops taking new
// RPCs and finishes those in flight (forcing a stop after grace).
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	// Zero the per-method series so every RPC shows in /metrics before its first call.
	s.metrics.InitializeMetrics(s.Server)
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.Stop()
	}
	<-errc
	return nil
}
