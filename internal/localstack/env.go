// Package localstack describes a Dark Tower stack running as local processes:
// which ports each part listens on and the environment each binary gets. The
// variable names are the Kubernetes manifests' (SPEC section 3), so local mode,
// the end-to-end tests and the cluster share one truth.
package localstack

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/darktower/devstack/internal/auth"
	"github.com/darktower/devstack/internal/secret"
)

// Client ids in AC's clients file (SPEC section 4).
const (
	GCClientID       = "global-controller"
	MCClientID       = "meeting-controller"
	VerifierClientID = "verifier"
	// WebClientID is what a browser or test uses to join meetings.
	WebClientID = "web-client"
)

// Secrets are generated once per state directory and never printed.
type Secrets struct {
	SigningKey           secret.Value // base64 Ed25519 seed shared by every AC
	BindingSecret        secret.Value // base64, MC_BINDING_TOKEN_SECRET
	GCClientSecret       secret.Value
	MCClientSecret       secret.Value
	VerifierClientSecret secret.Value
	WebClientSecret      secret.Value
}

// NewSecrets generates a fresh set.
func NewSecrets() (Secrets, error) {
	var vals [6][]byte
	for i := range vals {
		vals[i] = make([]byte, 32)
		if _, err := rand.Read(vals[i]); err != nil {
			return Secrets{}, err
		}
	}
	return Secrets{
		SigningKey:           secret.New(base64.StdEncoding.EncodeToString(vals[0])),
		BindingSecret:        secret.New(base64.StdEncoding.EncodeToString(vals[1])),
		GCClientSecret:       secret.New(hex.EncodeToString(vals[2])),
		MCClientSecret:       secret.New(hex.EncodeToString(vals[3])),
		VerifierClientSecret: secret.New(hex.EncodeToString(vals[4])),
		WebClientSecret:      secret.New(hex.EncodeToString(vals[5])),
	}, nil
}

// randomHex is n random bytes in hex, for passwords.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// GCPorts are one GC's listeners.
type GCPorts struct{ HTTP, GRPC int }

// MCPorts are one MC's listeners; WebTransport is UDP.
type MCPorts struct{ GRPC, Health, WebTransport int }

// Tuning shortens the protocol's timers; zero values keep the defaults.
type Tuning struct {
	StalenessThresholdSeconds int
	StalenessCheckInterval    time.Duration
	FastHeartbeatInterval     time.Duration
	ComprehensiveHeartbeat    time.Duration
	MCShutdownGrace           time.Duration
}

// Topology is where everything listens and what it is given.
type Topology struct {
	Host        string // loopback address every process binds and advertises
	Region      string
	DatabaseURL secret.Value
	RedisURL    secret.Value
	ClientsFile string
	Secrets     Secrets
	AC          []int
	GC          []GCPorts
	MC          []MCPorts
	Tuning      Tuning
}

func (t *Topology) addr(port int) string { return t.Host + ":" + strconv.Itoa(port) }

// ACURL is the base URL of AC replica i.
func (t *Topology) ACURL(i int) string { return "http://" + t.addr(t.AC[i%len(t.AC)]) }

// GCHTTPURL is the base URL of GC replica i's HTTP API.
func (t *Topology) GCHTTPURL(i int) string { return "http://" + t.addr(t.GC[i%len(t.GC)].HTTP) }

// GCGRPCAddr is GC replica i's gRPC host:port.
func (t *Topology) GCGRPCAddr(i int) string { return t.addr(t.GC[i%len(t.GC)].GRPC) }

// MCHealthURL is the base URL of MC i's health listener.
func (t *Topology) MCHealthURL(i int) string { return "http://" + t.addr(t.MC[i].Health) }

// MCID is the id MC i registers under.
func MCID(i int) string { return fmt.Sprintf("mc-local-%d", i) }

// GCID is the id GC i calls itself.
func GCID(i int) string { return fmt.Sprintf("gc-local-%d", i) }

// MigrateEnv is db-migrate's environment.
func (t *Topology) MigrateEnv() map[string]string {
	return map[string]string{"DATABASE_URL": t.DatabaseURL.Reveal()}
}

// ACEnv is AC replica i's environment.
func (t *Topology) ACEnv(i int) map[string]string {
	return map[string]string{
		"BIND_ADDRESS":    t.addr(t.AC[i]),
		"DATABASE_URL":    t.DatabaseURL.Reveal(),
		"AC_SIGNING_KEY":  t.Secrets.SigningKey.Reveal(),
		"AC_CLIENTS_FILE": t.ClientsFile,
	}
}

// GCEnv is GC replica i's environment. GC i takes keys and tokens from AC i,
// so with two of each a token from one AC is checked against the other's JWKS.
func (t *Topology) GCEnv(i int) map[string]string {
	env := map[string]string{
		"BIND_ADDRESS":         t.addr(t.GC[i].HTTP),
		"GC_GRPC_BIND_ADDRESS": t.addr(t.GC[i].GRPC),
		"DATABASE_URL":         t.DatabaseURL.Reveal(),
		"AC_INTERNAL_URL":      t.ACURL(i),
		"AC_JWKS_URL":          t.ACURL(i) + auth.JWKSPath,
		"GC_CLIENT_ID":         GCClientID,
		"GC_CLIENT_SECRET":     t.Secrets.GCClientSecret.Reveal(),
		"GC_REGION":            t.Region,
		"GC_ID":                GCID(i),
	}
	tu := t.Tuning
	setInt(env, "MC_STALENESS_THRESHOLD_SECONDS", tu.StalenessThresholdSeconds)
	setDur(env, "GC_STALENESS_CHECK_INTERVAL", tu.StalenessCheckInterval)
	setDur(env, "GC_FAST_HEARTBEAT_INTERVAL", tu.FastHeartbeatInterval)
	setDur(env, "GC_COMPREHENSIVE_HEARTBEAT_INTERVAL", tu.ComprehensiveHeartbeat)
	return env
}

// MCEnv is MC i's environment. MC i registers with GC i and takes its token
// from AC i+1, so tokens cross AC replicas.
func (t *Topology) MCEnv(i int) map[string]string {
	p := t.MC[i]
	env := map[string]string{
		"MC_ID":                             MCID(i),
		"MC_REGION":                         t.Region,
		"GC_GRPC_URL":                       "http://" + t.GCGRPCAddr(i),
		"AC_INTERNAL_URL":                   t.ACURL(i + 1),
		"AC_JWKS_URL":                       t.ACURL(i+1) + auth.JWKSPath,
		"MC_CLIENT_ID":                      MCClientID,
		"MC_CLIENT_SECRET":                  t.Secrets.MCClientSecret.Reveal(),
		"REDIS_URL":                         t.RedisURL.Reveal(),
		"MC_GRPC_BIND_ADDRESS":              t.addr(p.GRPC),
		"MC_HEALTH_BIND_ADDRESS":            t.addr(p.Health),
		"MC_WEBTRANSPORT_BIND_ADDRESS":      t.addr(p.WebTransport),
		"MC_GRPC_ADVERTISE_ADDRESS":         "http://" + t.addr(p.GRPC),
		"MC_WEBTRANSPORT_ADVERTISE_ADDRESS": "https://" + t.addr(p.WebTransport),
		"MC_ALLOW_LOOPBACK_ADVERTISE":       "true",
		"MC_BINDING_TOKEN_SECRET":           t.Secrets.BindingSecret.Reveal(),
	}
	setDur(env, "MC_SHUTDOWN_GRACE", t.Tuning.MCShutdownGrace)
	return env
}

func setInt(env map[string]string, k string, v int) {
	if v > 0 {
		env[k] = strconv.Itoa(v)
	}
}

func setDur(env map[string]string, k string, v time.Duration) {
	if v > 0 {
		env[k] = v.String()
	}
}

type clientEntry struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	ServiceType  string   `yaml:"service_type"`
	Scopes       []string `yaml:"scopes"`
}

// WriteClientsFile writes AC's clients file (mode 0600) for s, and next to
// it WebClientForm's file.
func WriteClientsFile(path string, s Secrets) error {
	doc := struct {
		Clients []clientEntry `yaml:"clients"`
	}{Clients: []clientEntry{
		{GCClientID, s.GCClientSecret.Reveal(), auth.ServiceGlobalController, []string{auth.ScopeWriteMC}},
		{MCClientID, s.MCClientSecret.Reveal(), auth.ServiceMeetingController, []string{auth.ScopeWriteGC}},
		{VerifierClientID, s.VerifierClientSecret.Reveal(), auth.ServiceVerifier, []string{auth.ScopeReadGC}},
		{WebClientID, s.WebClientSecret.Reveal(), auth.ServiceWebClient, []string{auth.ScopeMeetingJoin}},
	}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {WebClientID},
		"client_secret": {s.WebClientSecret.Reveal()}, "scope": {auth.ScopeMeetingJoin}}
	return os.WriteFile(WebClientForm(path), []byte(form.Encode()), 0o600)
}

// WebClientForm is the file (mode 0600) beside the clients file at
// clientsFile holding the web-client's token request, form-encoded, so a
// developer gets a join token with `curl -d @file` and the secret never
// appears on a command line.
func WebClientForm(clientsFile string) string {
	return filepath.Join(filepath.Dir(clientsFile), "web-client.form")
}
