// Package httpserver runs the HTTP side every service shares: health,
// readiness that reflects dependencies, /metrics, and graceful shutdown.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/darktower/devstack/internal/metrics"
)

// Check returns nil when a dependency is usable.
type Check func(ctx context.Context) error

// Probes registers liveness and readiness handlers on mux at the given paths.
// Readiness runs every check with a short timeout and answers 503 with the
// first failure's message.
func Probes(mux *http.ServeMux, livePath, readyPath string, ready ...Check) {
	mux.HandleFunc("GET "+livePath, func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+readyPath, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, c := range ready {
			if err := c(ctx); err != nil {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// Metrics registers /metrics for reg on mux.
func Metrics(mux *http.ServeMux, reg *prometheus.Registry) {
	mux.Handle("GET /metrics", metrics.Handler(reg))
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}

// Timeouts bound how long one client may hold a connection: a slow header,
// a slow body, a reader that never drains the answer, an idle keep-alive.
type Timeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts leave room for GC's slowest handler (a join, bounded at
// 20 s) while no slow client can pin a connection for long.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 15 * time.Second, Write: 30 * time.Second, Idle: 60 * time.Second}

// maxHeaderBytes bounds request headers; no route needs more than a token.
const maxHeaderBytes = 64 << 10

func newServer(h http.Handler, t Timeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Serve runs h on ln until ctx ends, then shuts down gracefully, letting
// requests in flight finish for up to grace.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	return serve(ctx, newServer(h, DefaultTimeouts, log), ln, grace)
}

func serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
