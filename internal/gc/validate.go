package gc

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"

	"github.com/darktower/devstack/gen/internalv1"
)

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	hexPattern  = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)
)

// invalid is a validation failure; its message names the field.
type invalid struct{ msg string }

func (e *invalid) Error() string { return e.msg }

func invalidf(format string, a ...any) error { return &invalid{fmt.Sprintf(format, a...)} }

func checkID(field, id string) error {
	if !idPattern.MatchString(id) {
		return invalidf("%s: expected 1-255 characters of [A-Za-z0-9_-], got %d characters", field, len(id))
	}
	return nil
}

func checkRegion(field, region string) error {
	if n := len(region); n < 1 || n > 50 {
		return invalidf("%s: expected 1-50 characters, got %d", field, n)
	}
	return nil
}

// checkEndpoint demands an http(s) URL with a host, at most 255 characters.
func checkEndpoint(field, v string) error {
	if len(v) == 0 || len(v) > 255 {
		return invalidf("%s: expected an http:// or https:// URL of at most 255 characters, got %d characters", field, len(v))
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("%s: expected an http:// or https:// URL with a host, got %q", field, v)
	}
	return nil
}

// checkCount demands 0 < n <= MaxInt32 (the column is a Postgres INTEGER).
func checkCount(field string, n uint32) error {
	if n == 0 || n > math.MaxInt32 {
		return invalidf("%s: expected a number from 1 to %d, got %d", field, math.MaxInt32, n)
	}
	return nil
}

func validateRegister(r *internalv1.RegisterMCRequest) error {
	if err := checkID("id", r.GetId()); err != nil {
		return err
	}
	if err := checkRegion("region", r.GetRegion()); err != nil {
		return err
	}
	if err := checkEndpoint("grpc_endpoint", r.GetGrpcEndpoint()); err != nil {
		return err
	}
	if err := checkEndpoint("webtransport_endpoint", r.GetWebtransportEndpoint()); err != nil {
		return err
	}
	if err := checkCount("max_meetings", r.GetMaxMeetings()); err != nil {
		return err
	}
	if err := checkCount("max_participants", r.GetMaxParticipants()); err != nil {
		return err
	}
	if h := r.GetWebtransportCertSha256(); h != "" && !hexPattern.MatchString(h) {
		return invalidf("webtransport_cert_sha256: expected empty or 64 hex characters, got %d characters", len(h))
	}
	return nil
}

// validateHeartbeat checks what both heartbeat kinds share and returns the
// stored health name.
func validateHeartbeat(id string, c *internalv1.Capacity, h internalv1.HealthStatus) (string, error) {
	if err := checkID("controller_id", id); err != nil {
		return "", err
	}
	if c == nil {
		return "", invalidf("capacity: required")
	}
	if err := checkCount("capacity.max_meetings", c.GetMaxMeetings()); err != nil {
		return "", err
	}
	if err := checkCount("capacity.max_participants", c.GetMaxParticipants()); err != nil {
		return "", err
	}
	if c.GetCurrentMeetings() > math.MaxInt32 {
		return "", invalidf("capacity.current_meetings: expected at most %d, got %d", math.MaxInt32, c.GetCurrentMeetings())
	}
	if c.GetCurrentParticipants() > math.MaxInt32 {
		return "", invalidf("capacity.current_participants: expected at most %d, got %d", math.MaxInt32, c.GetCurrentParticipants())
	}
	name, ok := healthToDB(h)
	if !ok {
		return "", invalidf("health: expected one of HEALTH_STATUS_%s, got %v", strings.ToUpper(strings.Join(HealthValues(), ", HEALTH_STATUS_")), h)
	}
	return name, nil
}

func checkPercent(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return invalidf("%s: expected a finite number >= 0, got %v", field, v)
	}
	return nil
}

func validateList(r *internalv1.ListMeetingControllersRequest) error {
	if r.GetRegion() != "" {
		if err := checkRegion("region", r.GetRegion()); err != nil {
			return err
		}
	}
	if h := r.GetHealth(); h != internalv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED {
		if _, ok := healthToDB(h); !ok {
			return invalidf("health: unknown value %d", int32(h))
		}
	}
	return nil
}
