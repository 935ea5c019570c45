package ac

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/httpserver"
	"github.com/darktower/devstack/internal/logging"
	"github.com/darktower/devstack/internal/secret"
)

// tokenRequest is a parsed client-credentials request, whichever way it came.
type tokenRequest struct {
	grantType string
	clientID  string
	secret    secret.Value
	scope     string
	scopeSet  bool
	audience  string // optional: the one service the token is for (aud)
	basic     bool   // the client authenticated with HTTP Basic
}

// oauthError is an RFC 6749 section 5.2 error answer.
type oauthError struct {
	code   int
	err    string // error field
	desc   string // error_description
	status string // metric label
	detail string // logged instead of desc when set; never sent to the caller
}

func (e *oauthError) Error() string { return e.err + ": " + e.desc }

func badRequest(desc string) *oauthError {
	return &oauthError{code: http.StatusBadRequest, err: "invalid_request", desc: desc, status: statusInvalidReq}
}

func invalidClient(desc string) *oauthError {
	return &oauthError{code: http.StatusUnauthorized, err: "invalid_client", desc: desc, status: statusInvalidClient}
}

// invalidClientDetail hides from the caller whether the client exists; the
// log says which.
func invalidClientDetail(detail string) *oauthError {
	e := invalidClient("unknown client or wrong secret")
	e.detail = detail
	return e
}

// token serves POST /api/v1/auth/service/token (client_credentials grant).
func (s *Service) token(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req, err := parseTokenRequest(w, r)
	var resp map[string]any
	if err == nil {
		resp, err = s.issue(r.Context(), req)
	}
	outcome, level := statusSuccess, slog.LevelInfo
	attrs := []any{"client_id", logging.Bound(req.clientID)}
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			attrs = append(attrs, "error", err.Error())
			level = slog.LevelError
			oe = &oauthError{code: http.StatusInternalServerError, err: "server_error", desc: "internal error; see AC logs", status: statusError}
		}
		outcome = oe.status
		attrs = append(attrs, "reason", cmp.Or(oe.detail, oe.desc))
		if oe.code == http.StatusUnauthorized && req.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="dark-tower-ac", charset="UTF-8"`)
		}
		w.Header().Set("Cache-Control", "no-store")
		httpserver.WriteJSON(w, oe.code, map[string]string{"error": oe.err, "error_description": oe.desc})
	} else {
		attrs = append(attrs, "scope", resp["scope"])
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		httpserver.WriteJSON(w, http.StatusOK, resp)
	}
	elapsed := time.Since(start)
	s.issued.WithLabelValues(outcome).Inc()
	s.duration.Observe(elapsed.Seconds())
	attrs = append(attrs, "outcome", outcome, "duration_ms", elapsed.Milliseconds())
	s.log.Log(r.Context(), level, "token request", attrs...)
}

// issue authenticates the client and signs its token.
func (s *Service) issue(ctx context.Context, req tokenRequest) (map[string]any, error) {
	if !s.synced.Load() {
		return nil, &oauthError{code: http.StatusServiceUnavailable, err: "temporarily_unavailable", desc: "service clients are not loaded yet; retry shortly", status: statusError}
	}
	c, found, err := lookupClient(ctx, s.pool, req.clientID)
	if err != nil {
		return nil, err
	}
	hash := s.dummyHash
	if found {
		hash = c.hash
	}
	// Always pay for one bcrypt comparison, found or not.
	match := bcrypt.CompareHashAndPassword(hash, []byte(req.secret.Reveal())) == nil
	switch {
	case !found:
		return nil, invalidClientDetail("unknown client")
	case !match:
		return nil, invalidClientDetail("wrong client_secret")
	case !c.active:
		return nil, invalidClient("client is inactive")
	}
	granted := c.scopes
	if req.scopeSet {
		asked := strings.Fields(req.scope)
		for _, sc := range asked {
			if !slices.Contains(c.scopes, sc) {
				return nil, &oauthError{code: http.StatusBadRequest, err: "invalid_scope", desc: "scope " + quote(sc) + " is not granted to this client", status: statusInvalidReq}
			}
		}
		if len(asked) > 0 {
			granted = slices.Compact(slices.Sorted(slices.Values(asked)))
		}
	}
	scope := strings.Join(granted, " ")
	ttl := s.ttl
	if req.audience != "" {
		// A token for one service only: short, like the issue 11 GC -> MC token.
		ttl = min(ttl, auth.AudienceTTL)
	}
	tok, _, err := s.signer.SignFor(req.clientID, scope, c.serviceType, req.audience, ttl)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(ttl / time.Second),
		"scope":        scope,
	}, nil
}

// parseTokenRequest reads the grant from a form or JSON body and the client
// from the body or HTTP Basic. Other content types are invalid_request (400),
// never 415: OAuth2 clients only understand RFC 6749 errors.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, error) {
	var req tokenRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return req, badRequest("Content-Type must be application/x-www-form-urlencoded or application/json")
	}
	var fields map[string]string
	switch mt {
	case "application/x-www-form-urlencoded":
		fields, err = formFields(r)
	case "application/json":
		fields, err = jsonFields(r)
	default:
		return req, badRequest("Content-Type must be application/x-www-form-urlencoded or application/json")
	}
	if err != nil {
		return req, err
	}
	req.grantType = fields["grant_type"]
	req.clientID = fields["client_id"]
	req.secret = secret.New(fields["client_secret"])
	req.scope, req.scopeSet = fields["scope"], fields["scope"] != ""
	req.audience = fields["audience"]

	if id, pw, ok := r.BasicAuth(); ok {
		req.basic = true
		// RFC 6749 2.3.1: Basic credentials are form-urlencoded first.
		uid, err1 := url.QueryUnescape(id)
		upw, err2 := url.QueryUnescape(pw)
		if err1 != nil || err2 != nil {
			return req, invalidClient("HTTP Basic credentials are not form-urlencoded")
		}
		if fields["client_secret"] != "" || (req.clientID != "" && req.clientID != uid) {
			req.clientID = uid
			return req, badRequest("use one client authentication method: HTTP Basic or client_secret in the body, not both")
		}
		req.clientID, req.secret = uid, secret.New(upw)
	} else if r.Header.Get("Authorization") != "" {
		return req, invalidClient("Authorization header must be HTTP Basic")
	}

	switch {
	case req.grantType == "":
		return req, badRequest("grant_type is required")
	case req.grantType != "client_credentials":
		return req, &oauthError{code: http.StatusBadRequest, err: "unsupported_grant_type", desc: "only grant_type=client_credentials is supported", status: statusBadGrant}
	case req.clientID == "" || req.secret.Empty():
		return req, invalidClient("client authentication required: HTTP Basic or client_id and client_secret in the body")
	case !clientIDPattern.MatchString(req.clientID):
		// No stored client has such an id; asking the database would turn a
		// NUL or invalid UTF-8 into a server error and fire AC's alert.
		return req, badRequest("client_id: expected 1-255 characters of [A-Za-z0-9._-] starting with a letter or digit")
	case req.audience != "" && !audiencePattern.MatchString(req.audience):
		return req, badRequest("audience: expected a service id of 1-255 characters of [A-Za-z0-9_-]")
	}
	return req, nil
}

var tokenParams = []string{"grant_type", "client_id", "client_secret", "scope", "audience"}

// audiencePattern is an MC id (SPEC section 5), what GC asks tokens for.
var audiencePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func formFields(r *http.Request) (map[string]string, error) {
	if err := r.ParseForm(); err != nil {
		return nil, bodyError(err, "body is not valid application/x-www-form-urlencoded")
	}
	out := map[string]string{}
	for _, k := range tokenParams {
		v := r.PostForm[k]
		if len(v) > 1 {
			return nil, badRequest("parameter " + k + " is repeated")
		}
		if len(v) == 1 {
			out[k] = v[0]
		}
	}
	return out, nil
}

func jsonFields(r *http.Request) (map[string]string, error) {
	var body struct {
		GrantType    *string `json:"grant_type"`
		ClientID     *string `json:"client_id"`
		ClientSecret *string `json:"client_secret"`
		Scope        *string `json:"scope"`
		Audience     *string `json:"audience"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		return nil, bodyError(err, "body is not a JSON object of strings {grant_type, client_id, client_secret, scope, audience}")
	}
	if dec.More() {
		return nil, badRequest("body has data after the JSON object")
	}
	out := map[string]string{}
	for k, v := range map[string]*string{"grant_type": body.GrantType, "client_id": body.ClientID, "client_secret": body.ClientSecret, "scope": body.Scope, "audience": body.Audience} {
		if v != nil {
			out[k] = *v
		}
	}
	return out, nil
}

func bodyError(err error, desc string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return badRequest("request body larger than 16 KiB")
	}
	return badRequest(desc)
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + s + `"`
}
