// Package mc is the meeting controller: it registers with the global
// controller (GC) and heartbeats, accepts meeting assignments from GC over
// gRPC, keeps meeting state in Redis and terminates WebTransport sessions for
// the meetings it hosts.
package mc

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/secret"
)

// Config is everything the meeting controller reads from its environment.
type Config struct {
	ID               string
	Region           string
	GCTarget         string // host:port of GC's gRPC server (GC_GRPC_URL without http://)
	ACInternalURL    string
	ACJWKSURL        string
	ClientID         string
	ClientSecret     secret.Value
	RedisURL         secret.Value
	GRPCBind         string
	HealthBind       string
	WebTransportBind string
	GRPCAdvertise    string // http://host:port as sent to GC
	WTAdvertise      string // https://host:port as sent to GC
	BindingSecret    secret.Value
	MaxMeetings      int
	MaxParticipants  int
	TLSCertFile      string
	TLSKeyFile       string
	ShutdownGrace    time.Duration
	// MeetingIdleTTL ends a meeting nobody joins; MeetingGrace ends one
	// its last participant left (issue 11 item 3: meetings used to live
	// forever, so anonymous joins filled every MC for good).
	MeetingIdleTTL time.Duration
	MeetingGrace   time.Duration

	// Not read from the environment; tests shorten them.
	RegisterBackoffMin time.Duration
	RegisterBackoffMax time.Duration
	RPCTimeout         time.Duration
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// LoadConfig reads the contract's MC_* settings. The first problem comes back
// as a single line naming the variable; secret values never appear in it.
func LoadConfig(r *config.Reader) (Config, error) {
	c := Config{
		Region:             r.Region("MC_REGION"),
		ACJWKSURL:          urlString(r, "AC_JWKS_URL", "http", "https"),
		ClientID:           r.String("MC_CLIENT_ID"),
		ClientSecret:       r.Secret("MC_CLIENT_SECRET"),
		RedisURL:           r.Secret("REDIS_URL"),
		GRPCBind:           r.HostPort("MC_GRPC_BIND_ADDRESS", "0.0.0.0:50052"),
		HealthBind:         r.HostPort("MC_HEALTH_BIND_ADDRESS", "0.0.0.0:8081"),
		WebTransportBind:   r.HostPort("MC_WEBTRANSPORT_BIND_ADDRESS", "0.0.0.0:4433"),
		BindingSecret:      r.SecretBase64("MC_BINDING_TOKEN_SECRET", 32),
		MaxMeetings:        r.Int("MC_MAX_MEETINGS", 100, 1, 1_000_000),
		MaxParticipants:    r.Int("MC_MAX_PARTICIPANTS", 1000, 1, 10_000_000),
		TLSCertFile:        r.StringOr("MC_TLS_CERT_FILE", ""),
		TLSKeyFile:         r.StringOr("MC_TLS_KEY_FILE", ""),
		ShutdownGrace:      r.ShutdownGrace("MC_SHUTDOWN_GRACE"),
		MeetingIdleTTL:     r.Duration("MC_MEETING_IDLE_TTL", 10*time.Minute),
		MeetingGrace:       r.Duration("MC_MEETING_GRACE", time.Minute),
		RegisterBackoffMin: 500 * time.Millisecond,
		RegisterBackoffMax: 30 * time.Second,
		RPCTimeout:         5 * time.Second,
	}
	c.ID = r.StringOr("MC_ID", "")
	if c.ID == "" {
		c.ID = hostnameID()
	}
	if !idPattern.MatchString(c.ID) {
		r.Fail("MC_ID", "expected 1 to 255 characters of [A-Za-z0-9_-], got %q", c.ID)
	}
	if u := r.URL("GC_GRPC_URL", "http"); u != nil {
		if u.Port() == "" || (u.Path != "" && u.Path != "/") {
			r.Fail("GC_GRPC_URL", "expected http://host:port with no path, got %q", u.Redacted())
		}
		c.GCTarget = u.Host
	}
	c.ACInternalURL = strings.TrimRight(urlString(r, "AC_INTERNAL_URL", "http", "https"), "/")
	if u := r.URL("REDIS_URL", "redis", "rediss"); u != nil {
		if _, err := redis.ParseURL(c.RedisURL.Reveal()); err != nil {
			// The parser's message may quote the URL, so it is not passed on.
			r.Fail("REDIS_URL", "expected redis://:password@host:port[/db] (the value is not shown)")
		}
	}

	allowLoopback := false
	if v := r.StringOr("MC_ALLOW_LOOPBACK_ADVERTISE", ""); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.Fail("MC_ALLOW_LOOPBACK_ADVERTISE", "expected true or false, got %q", v)
		}
		allowLoopback = b
	}
	c.GRPCAdvertise = advertise(r, "MC_GRPC_ADVERTISE_ADDRESS", "http", allowLoopback)
	c.WTAdvertise = advertise(r, "MC_WEBTRANSPORT_ADVERTISE_ADDRESS", "https", allowLoopback)

	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		name := "MC_TLS_KEY_FILE"
		if c.TLSCertFile == "" {
			name = "MC_TLS_CERT_FILE"
		}
		r.Fail(name, "MC_TLS_CERT_FILE and MC_TLS_KEY_FILE must be set together (or neither, for a generated dev certificate)")
	}

	// MC's own checks go through r.Fail, so the first problem is the first in
	// the order the variables were read.
	return c, r.Err()
}

func urlString(r *config.Reader, name string, schemes ...string) string {
	if u := r.URL(name, schemes...); u != nil {
		return u.String()
	}
	return ""
}

// advertise reads an address MC hands to GC. GC and clients dial it from other
// pods, so a loopback or unspecified host (SPEC section 9, mistake 5) is refused
// unless local mode says every process shares one host.
func advertise(r *config.Reader, name, scheme string, allowLoopback bool) string {
	u := r.URL(name, scheme)
	if u == nil {
		return ""
	}
	s := strings.TrimRight(u.String(), "/")
	switch {
	case u.Port() == "":
		r.Fail(name, "expected %s://<pod-ip>:port with an explicit port, got %q", scheme, s)
	case u.Path != "" && u.Path != "/":
		r.Fail(name, "expected %s://<pod-ip>:port with no path, got %q", scheme, s)
	case len(s) > 255:
		r.Fail(name, "expected at most 255 characters, got %d", len(s))
	case !allowLoopback && isLoopbackHost(u.Hostname()):
		r.Fail(name, "host %q is not reachable from other pods; advertise the pod IP (set MC_ALLOW_LOOPBACK_ADVERTISE=true only in local mode)", u.Hostname())
	}
	return s
}

func isLoopbackHost(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// hostnameID is the default MC_ID: the pod name in Kubernetes. Characters GC
// would refuse (dots of a local FQDN) become dashes.
func hostnameID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, h)
}

// advertisedHost is the host part of an advertised URL (for certificate SANs).
func advertisedHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
