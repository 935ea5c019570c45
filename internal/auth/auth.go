// Package auth holds the service-to-service token model: the claims AC signs,
// the scopes each caller needs, the validator GC and MC use, and the gRPC
// interceptor that enforces it.
package auth

import (
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the iss claim AC puts on every token and validators demand.
const Issuer = "dark-tower-ac"

// Scopes granted to service clients (SPEC section 4).
const (
	ScopeWriteGC = "service.write.gc" // MC calling GC's registration RPCs
	ScopeWriteMC = "service.write.mc" // GC calling MC's AssignMeeting
	ScopeReadGC  = "service.read.gc"  // operators and the verifier listing GC's registry
	// ScopeMeetingJoin lets a client (a browser, a test) join meetings at GC.
	ScopeMeetingJoin = "meeting.join"
	// ScopeMeetingSession is the scope of a meeting token: one participant's
	// WebTransport session in one meeting on one MC (aud).
	ScopeMeetingSession = "meeting.session"
)

// MeetingTokenPath is AC's endpoint that signs meeting tokens for GC.
const MeetingTokenPath = "/api/v1/auth/meeting/token"

// MeetingTokenTTL is a meeting token's lifetime: enough to open the session.
const MeetingTokenTTL = 5 * time.Minute

// Service types carried in the service_type claim.
const (
	ServiceMeetingController = "meeting-controller"
	ServiceGlobalController  = "global-controller"
	ServiceVerifier          = "verifier"
	ServiceWebClient         = "web-client"
)

// Claims is the payload of a Dark Tower service token.
type Claims struct {
	jwt.RegisteredClaims
	Scope       string `json:"scope"`
	ServiceType string `json:"service_type"`
	// MeetingID binds a meeting token to one meeting.
	MeetingID string `json:"meeting_id,omitempty"`
}

// HasScope reports whether the space-separated scope claim contains s.
func (c *Claims) HasScope(s string) bool {
	return slices.Contains(strings.Fields(c.Scope), s)
}

// Requirement is what a caller must present to use an operation.
type Requirement struct {
	Scope        string
	ServiceTypes []string // empty: any service type
	// Audience, when set, must be in the token's aud: a token AC issued for
	// one MC is then useless at another.
	Audience string
}

// Allows reports whether c meets the requirement.
func (r Requirement) Allows(c *Claims) bool {
	if !c.HasScope(r.Scope) {
		return false
	}
	if r.Audience != "" && !slices.Contains(c.Audience, r.Audience) {
		return false
	}
	return len(r.ServiceTypes) == 0 || slices.Contains(r.ServiceTypes, c.ServiceType)
}

// AudienceTTL caps the lifetime of a token bound to an audience (GC's token
// for one MC): short, so a captured one is soon worthless even there.
const AudienceTTL = 5 * time.Minute
