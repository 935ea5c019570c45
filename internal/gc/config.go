package gc

import (
	"os"
	"strings"
	"time"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/secret"
)

// Config is everything the global controller reads from its environment.
type Config struct {
	BindAddress           string        // BIND_ADDRESS: HTTP listen address
	GRPCBindAddress       string        // GC_GRPC_BIND_ADDRESS: gRPC listen address
	DatabaseURL           secret.Value  // DATABASE_URL
	ACInternalURL         string        // AC_INTERNAL_URL: AC base URL for GC's own token
	ACJWKSURL             string        // AC_JWKS_URL: keys that validate callers' tokens
	ClientID              string        // GC_CLIENT_ID
	ClientSecret          secret.Value  // GC_CLIENT_SECRET
	Region                string        // GC_REGION: default region for joins
	ID                    string        // GC_ID: requesting_gc_id, assigned_by
	StalenessThreshold    time.Duration // MC_STALENESS_THRESHOLD_SECONDS
	StalenessInterval     time.Duration // GC_STALENESS_CHECK_INTERVAL
	UnhealthyRetention    time.Duration // GC_UNHEALTHY_RETENTION
	FastHeartbeat         time.Duration // GC_FAST_HEARTBEAT_INTERVAL
	ComprehensiveInterval time.Duration // GC_COMPREHENSIVE_HEARTBEAT_INTERVAL
	ShutdownGrace         time.Duration // GC_SHUTDOWN_GRACE
	JoinBurst             int           // GC_JOIN_BURST: joins a caller may make at once
	JoinInterval          time.Duration // GC_JOIN_INTERVAL: one more join per interval, per caller
	JoinMaxCallers        int           // GC_JOIN_MAX_CALLERS: callers the join limiter tracks
}

// LoadConfig reads the contract's variables and returns the first problem as
// one line naming the variable.
func LoadConfig(r *config.Reader) (Config, error) {
	c := Config{
		BindAddress:     r.HostPort("BIND_ADDRESS", "0.0.0.0:8080"),
		GRPCBindAddress: r.HostPort("GC_GRPC_BIND_ADDRESS", "0.0.0.0:50051"),
		DatabaseURL:     r.DatabaseURL(),
	}
	if u := r.URL("AC_INTERNAL_URL", "http", "https"); u != nil {
		c.ACInternalURL = strings.TrimSuffix(u.String(), "/")
	}
	if u := r.URL("AC_JWKS_URL", "http", "https"); u != nil {
		c.ACJWKSURL = u.String()
	}
	c.ClientID = r.String("GC_CLIENT_ID")
	c.ClientSecret = r.Secret("GC_CLIENT_SECRET")
	c.Region = r.Region("GC_REGION")
	host, _ := os.Hostname()
	c.ID = r.StringOr("GC_ID", host)
	c.StalenessThreshold = r.Seconds("MC_STALENESS_THRESHOLD_SECONDS", 30*time.Second)
	c.StalenessInterval = r.Duration("GC_STALENESS_CHECK_INTERVAL", 5*time.Second)
	c.UnhealthyRetention = r.Duration("GC_UNHEALTHY_RETENTION", time.Hour)
	c.FastHeartbeat = r.Duration("GC_FAST_HEARTBEAT_INTERVAL", 10*time.Second)
	c.ComprehensiveInterval = r.Duration("GC_COMPREHENSIVE_HEARTBEAT_INTERVAL", 30*time.Second)
	c.ShutdownGrace = r.ShutdownGrace("GC_SHUTDOWN_GRACE")
	c.JoinBurst = r.Int("GC_JOIN_BURST", 20, 1, 100000)
	c.JoinInterval = r.Duration("GC_JOIN_INTERVAL", 500*time.Millisecond)
	c.JoinMaxCallers = r.Int("GC_JOIN_MAX_CALLERS", 10000, 1, 1000000)
	if c.ID == "" {
		// Only when GC_ID is unset and the hostname unknown.
		c.ID = r.String("GC_ID")
	}
	return c, r.Err()
}
