package gc

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/httpserver"
)

// routes builds GC's HTTP API: probes, metrics, the registry listing and
// the meeting join endpoint.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	httpserver.Probes(mux, "/health", "/ready", a.store.Ping, a.validator.Ready)
	httpserver.Metrics(mux, a.reg)
	mux.HandleFunc("GET /version", versionHTTP)
	ins := httpserver.NewInstrumenter("gc", a.reg)
	mux.Handle("GET /api/v1/meeting-controllers", ins.Wrap("meeting_controllers", http.HandlerFunc(a.listHTTP)))
	mux.Handle("POST /api/v1/meetings/{code}/join", ins.Wrap("meeting_join", http.HandlerFunc(a.joinHTTP)))
	return mux
}

// requireScope validates the bearer token with the same validator the gRPC
// server uses: 401 without a valid token, 403 when the scope is missing.
// It returns the caller's claims when the token passes.
func (a *App) requireScope(w http.ResponseWriter, r *http.Request, scope string) (*auth.Claims, bool) {
	tok, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="global-controller"`)
		httpserver.WriteError(w, http.StatusUnauthorized, "missing Bearer token")
		return nil, false
	}
	claims, err := a.validator.Validate(r.Context(), tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="global-controller", error="invalid_token"`)
		httpserver.WriteError(w, http.StatusUnauthorized, err.Error())
		return nil, false
	}
	if !claims.HasScope(scope) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="global-controller", error="insufficient_scope", scope="`+scope+`"`)
		httpserver.WriteError(w, http.StatusForbidden, "token of "+claims.Subject+" lacks scope "+scope)
		return nil, false
	}
	return claims, true
}

type capacityJSON struct {
	MaxMeetings         int32 `json:"max_meetings"`
	CurrentMeetings     int32 `json:"current_meetings"`
	MaxParticipants     int32 `json:"max_participants"`
	CurrentParticipants int32 `json:"current_participants"`
}

type controllerJSON struct {
	ID                     string       `json:"id"`
	Region                 string       `json:"region"`
	GRPCEndpoint           string       `json:"grpc_endpoint"`
	WebTransportEndpoint   string       `json:"webtransport_endpoint"`
	WebTransportCertSHA256 string       `json:"webtransport_cert_sha256"`
	Health                 string       `json:"health"`
	Capacity               capacityJSON `json:"capacity"`
	RegisteredAt           time.Time    `json:"registered_at"`
	LastHeartbeatAt        time.Time    `json:"last_heartbeat_at"`
}

// listHTTP is ListMeetingControllers over HTTP; health is lowercase.
func (a *App) listHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.requireScope(w, r, auth.ScopeReadGC); !ok {
		return
	}
	region := r.URL.Query().Get("region")
	if region != "" {
		if err := checkRegion("region", region); err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	health, err := ParseHealth(r.URL.Query().Get("health"))
	if err != nil {
		httpserver.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	cs, err := a.store.List(r.Context(), region, health)
	if err != nil {
		a.log.Error("listing controllers failed", "error", err)
		httpserver.WriteError(w, http.StatusServiceUnavailable, "registry database unavailable")
		return
	}
	out := make([]controllerJSON, len(cs))
	for i, c := range cs {
		h, _ := healthToDB(c.Health)
		out[i] = controllerJSON{
			ID: c.ID, Region: c.Region, GRPCEndpoint: c.GRPCEndpoint, WebTransportEndpoint: c.WebTransportEndpoint,
			WebTransportCertSHA256: c.CertSHA256, Health: h,
			Capacity:     capacityJSON{c.MaxMeetings, c.CurrentMeetings, c.MaxParticipants, c.CurrentParticipants},
			RegisteredAt: c.RegisteredAt.UTC(), LastHeartbeatAt: c.LastHeartbeatAt.UTC(),
		}
	}
	httpserver.WriteJSON(w, http.StatusOK, map[string]any{"controllers": out})
}

// joinHTTP places the meeting {code} and answers with a meeting token for a
// new participant. The caller needs a token with scope meeting.join (the
// web-client client's) and is rate limited by its subject; every attempt,
// valid or not, counts against the caller's joins.
func (a *App) joinHTTP(w http.ResponseWriter, r *http.Request) {
	claims, ok := a.requireScope(w, r, auth.ScopeMeetingJoin)
	if !ok {
		a.metrics.joins.WithLabelValues("unauthorized").Inc()
		return
	}
	if !a.limitJoin(w, claims.Subject) {
		return
	}
	code := r.PathValue("code")
	if !codePattern.MatchString(code) {
		a.metrics.joins.WithLabelValues("invalid").Inc()
		httpserver.WriteError(w, http.StatusBadRequest, "meeting code: expected 1-64 characters of [A-Za-z0-9_-]")
		return
	}
	region := r.URL.Query().Get("region")
	if region == "" {
		region = a.cfg.Region
	} else if err := checkRegion("region", region); err != nil {
		a.metrics.joins.WithLabelValues("invalid").Inc()
		httpserver.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	res, err := a.joiner.join(ctx, code, region)
	switch {
	case errors.Is(err, errNoController):
		a.metrics.joins.WithLabelValues("unavailable").Inc()
		httpserver.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		a.metrics.joins.WithLabelValues("error").Inc()
		a.log.Error("meeting join failed", "meeting_id", code, "error", err)
		httpserver.WriteError(w, http.StatusServiceUnavailable, "meeting join failed: registry database unavailable")
		return
	}
	participant := "p-" + strings.ToLower(rand.Text())
	mt, err := a.meetingToken(ctx, code, participant, res.ControllerID)
	if err != nil {
		a.metrics.joins.WithLabelValues("error").Inc()
		a.log.Error("meeting token from AC failed", "meeting_id", code, "controller_id", res.ControllerID, "error", err)
		httpserver.WriteError(w, http.StatusServiceUnavailable, "meeting join failed: no meeting token from AC")
		return
	}
	res.withMeetingToken(participant, mt)
	if res.reused {
		a.metrics.joins.WithLabelValues("reused").Inc()
	} else {
		a.metrics.joins.WithLabelValues("assigned").Inc()
	}
	w.Header().Set("Cache-Control", "no-store")
	httpserver.WriteJSON(w, http.StatusOK, res)
}
