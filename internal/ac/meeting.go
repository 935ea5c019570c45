package ac

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/logging"
)

// maxMeetingBody bounds the meeting token request, three short ids.
const maxMeetingBody = 4 << 10

var (
	meetingPattern     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	participantPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// meetingToken serves POST /api/v1/auth/meeting/token: GC, with its own
// token (scope service.write.mc, service_type global-controller), asks for
// a meeting token bound to a meeting, a participant and the MC that hosts
// the meeting (SPEC section 4). MC accepts a WebTransport session only with
// one. AC checks GC's token against its own keys: they are the JWKS.
func (s *Service) meetingToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	tok, ok := auth.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dark-tower-ac"`)
		httpserver.WriteError(w, http.StatusUnauthorized, "missing Bearer token")
		return
	}
	claims, err := s.self.Validate(r.Context(), tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dark-tower-ac", error="invalid_token"`)
		httpserver.WriteError(w, http.StatusUnauthorized, err.Error())
		return
	}
	need := auth.Requirement{Scope: auth.ScopeWriteMC, ServiceTypes: []string{auth.ServiceGlobalController}}
	if !need.Allows(claims) || len(claims.Audience) > 0 {
		httpserver.WriteError(w, http.StatusForbidden, "meeting tokens are issued to global-controller with scope service.write.mc")
		return
	}
	var body struct {
		MeetingID     string `json:"meeting_id"`
		ParticipantID string `json:"participant_id"`
		ControllerID  string `json:"controller_id"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxMeetingBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpserver.WriteError(w, http.StatusBadRequest, "body larger than 4 KiB")
			return
		}
		httpserver.WriteError(w, http.StatusBadRequest, "body: expected JSON {meeting_id, participant_id, controller_id}")
		return
	}
	switch {
	case !meetingPattern.MatchString(body.MeetingID):
		httpserver.WriteError(w, http.StatusBadRequest, "meeting_id: expected 1-64 characters of [A-Za-z0-9_-]")
		return
	case !participantPattern.MatchString(body.ParticipantID):
		httpserver.WriteError(w, http.StatusBadRequest, "participant_id: expected 1-128 characters of [A-Za-z0-9_-]")
		return
	case !audiencePattern.MatchString(body.ControllerID):
		httpserver.WriteError(w, http.StatusBadRequest, "controller_id: expected 1-255 characters of [A-Za-z0-9_-]")
		return
	}
	mt, _, err := s.signer.SignMeeting(body.ParticipantID, body.MeetingID, body.ControllerID, auth.MeetingTokenTTL)
	if err != nil {
		s.log.Error("signing a meeting token failed", "error", err)
		httpserver.WriteError(w, http.StatusInternalServerError, "internal error; see AC logs")
		return
	}
	s.log.Info("meeting token issued", "client_id", logging.Bound(claims.Subject), "meeting_id", body.MeetingID,
		"participant_id", body.ParticipantID, "controller_id", body.ControllerID)
	httpserver.WriteJSON(w, http.StatusOK, map[string]any{
		"meeting_token": mt, "token_type": "Bearer", "expires_in": int(auth.MeetingTokenTTL / time.Second),
	})
}
