package gc

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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

// checkRegion counts characters, not bytes, and refuses control characters
// and invalid UTF-8: a region ends up in logs, labels and Postgres TEXT.
func checkRegion(field, region string) error {
	if !utf8.ValidString(region) {
		return invalidf("%s: expected UTF-8 text", field)
	}
	if strings.IndexFunc(region, unicode.IsControl) >= 0 {
		return invalidf("%s: control characters are not allowed", field)
	}
	if n := utf8.RuneCountInString(region); n < 1 || n > 50 {
		return invalidf("%s: expected 1-50 characters, got %d", field, n)
	}
	return nil
}

// hostPattern is a DNS name or IPv4 address; IPv6 literals are checked by
// netip. Anything else (unix:, a percent-escape, a space) is not a host GC
// should dial.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$`)

// checkEndpoint demands scheme://host:port and nothing else: no userinfo,
// path, query or fragment, a port from 1 to 65535, at most 255 characters.
func checkEndpoint(field, v string, schemes ...string) error {
	want := strings.Join(schemes, ":// or ") + "://"
	if len(v) == 0 || len(v) > 255 {
		return invalidf("%s: expected a %s URL of at most 255 characters, got %d characters", field, want, len(v))
	}
	u, err := url.Parse(v)
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		return invalidf("%s: expected a %s URL", field, want)
	}
	switch {
	case u.User != nil:
		return invalidf("%s: userinfo is not allowed", field)
	case u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(v, "#"):
		return invalidf("%s: expected scheme://host:port with no path, query or fragment", field)
	}
	host, port := u.Hostname(), u.Port()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return invalidf("%s: an IPv6 zone is not allowed", field)
		}
	} else if !hostPattern.MatchString(host) {
		return invalidf("%s: expected a DNS name or IP address as host", field)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return invalidf("%s: expected a port from 1 to 65535", field)
	}
	return nil
}

// checkKey bounds the registration key a caller presents; its value is
// never echoed. An empty key matches no registration: for an unknown id
// the caller learns NOT_FOUND, for a held one PERMISSION_DENIED.
func checkKey(key string) error {
	if len(key) > 128 {
		return invalidf("registration_key: expected the value RegisterMC returned (at most 128 characters), got %d characters", len(key))
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
	if err := checkEndpoint("grpc_endpoint", r.GetGrpcEndpoint(), "http", "https"); err != nil {
		return err
	}
	// WebTransport runs over HTTP/3, which is TLS only.
	if err := checkEndpoint("webtransport_endpoint", r.GetWebtransportEndpoint(), "https"); err != nil {
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
	if c.GetCurrentMeetings() > c.GetMaxMeetings() {
		return "", invalidf("capacity.current_meetings: %d exceeds capacity.max_meetings %d", c.GetCurrentMeetings(), c.GetMaxMeetings())
	}
	if c.GetCurrentParticipants() > c.GetMaxParticipants() {
		return "", invalidf("capacity.current_participants: %d exceeds capacity.max_participants %d", c.GetCurrentParticipants(), c.GetMaxParticipants())
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
