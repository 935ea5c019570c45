package localstack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/darktower/devstack/internal/secret"
)

// DefaultPortBase is where local mode's ports start; PORT_BASE moves them all.
const DefaultPortBase = 17000

// Offsets from the port base. Two replicas of each service need two ports
// each, so the cluster's well-known ports cannot be reused on one host.
const (
	offPostgres         = 0
	offRedis            = 1
	offAC               = 2  // +0, +1
	offGCHTTP           = 10 // +0, +1
	offGCGRPC           = 12 // +0, +1
	offMCGRPC           = 20 // +0, +1
	offMCHealth         = 22 // +0, +1
	offMCWebTransport   = 24 // +0, +1, UDP
	offRedisExporter    = 30
	offPostgresExporter = 31
	offPrometheus       = 90
	offVerifier         = 91
	// PortSpan is how many ports above the base the layout uses.
	PortSpan = 92
)

// Layout is a local stack rooted at a state directory.
type Layout struct {
	StateDir string
	Base     int
}

// Ports of the supporting processes.
func (l Layout) PostgresPort() int         { return l.Base + offPostgres }
func (l Layout) RedisPort() int            { return l.Base + offRedis }
func (l Layout) RedisExporterPort() int    { return l.Base + offRedisExporter }
func (l Layout) PostgresExporterPort() int { return l.Base + offPostgresExporter }
func (l Layout) PrometheusPort() int       { return l.Base + offPrometheus }
func (l Layout) VerifierPort() int         { return l.Base + offVerifier }

// Paths inside the state directory.
func (l Layout) Path(elem ...string) string {
	return filepath.Join(append([]string{l.StateDir}, elem...)...)
}

// Topology is the services' wiring for this layout.
func (l Layout) Topology(s Secrets, pgPassword, redisPassword secret.Value) *Topology {
	t := &Topology{
		Host:   "127.0.0.1",
		Region: "local",
		DatabaseURL: secret.New(fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable",
			DatabaseUser, pgPassword.Reveal(), l.PostgresPort(), DatabaseName)),
		RedisURL:    secret.New(fmt.Sprintf("redis://:%s@127.0.0.1:%d", redisPassword.Reveal(), l.RedisPort())),
		ClientsFile: l.Path("config", "clients.yaml"),
		Secrets:     s,
	}
	for i := range 2 {
		t.AC = append(t.AC, l.Base+offAC+i)
		t.GC = append(t.GC, GCPorts{HTTP: l.Base + offGCHTTP + i, GRPC: l.Base + offGCGRPC + i})
		t.MC = append(t.MC, MCPorts{GRPC: l.Base + offMCGRPC + i, Health: l.Base + offMCHealth + i, WebTransport: l.Base + offMCWebTransport + i})
	}
	return t
}

// Database names, as in the cluster (SPEC section 3).
const (
	DatabaseUser = "darktower"
	DatabaseName = "dark_tower"
)

// StoredSecrets is everything generated on first run, kept in
// secrets.json (mode 0600) so a second `make up` reuses the data.
type StoredSecrets struct {
	PostgresPassword     string `json:"postgres_password"`
	RedisPassword        string `json:"redis_password"`
	SigningKey           string `json:"signing_key"`
	BindingSecret        string `json:"binding_secret"`
	GCClientSecret       string `json:"gc_client_secret"`
	MCClientSecret       string `json:"mc_client_secret"`
	VerifierClientSecret string `json:"verifier_client_secret"`
	WebClientSecret      string `json:"web_client_secret,omitempty"`
}

// Secrets returns the service secrets.
func (s StoredSecrets) Secrets() Secrets {
	return Secrets{
		SigningKey:           secret.New(s.SigningKey),
		BindingSecret:        secret.New(s.BindingSecret),
		GCClientSecret:       secret.New(s.GCClientSecret),
		MCClientSecret:       secret.New(s.MCClientSecret),
		VerifierClientSecret: secret.New(s.VerifierClientSecret),
		WebClientSecret:      secret.New(s.webClientSecret()),
	}
}

// webClientSecret is the stored web-client secret. A secrets.json written
// before that client existed has none: it gets one derived from its signing
// key, the same on every run, so that state keeps working unchanged.
func (s StoredSecrets) webClientSecret() string {
	if s.WebClientSecret != "" {
		return s.WebClientSecret
	}
	m := hmac.New(sha256.New, []byte(s.SigningKey))
	m.Write([]byte(WebClientID))
	return hex.EncodeToString(m.Sum(nil))
}

// ErrNoStack is LoadSecrets' error when the state directory holds no stack:
// `make up` never ran there, or `make clean` removed it.
var ErrNoStack = errors.New("no stack")

// LoadSecrets reads secrets.json and never writes: read-only commands
// (status, verify, logs) use it.
func (l Layout) LoadSecrets() (StoredSecrets, error) {
	path := l.Path("secrets.json")
	var st StoredSecrets
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%w in %s", ErrNoStack, l.StateDir)
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: not valid JSON (delete it with `make clean` to start over): %w", path, err)
	}
	return st, nil
}

// LoadOrCreateSecrets reads secrets.json, creating it on first run. Only
// `make up` calls it, under the state directory's lock; the file appears
// whole or not at all (written aside, then linked into place, which fails
// rather than replace one that exists), so the secrets a running Postgres
// and Redis were given are never replaced.
func (l Layout) LoadOrCreateSecrets() (StoredSecrets, error) {
	st, err := l.LoadSecrets()
	if !errors.Is(err, ErrNoStack) {
		return st, err
	}
	path := l.Path("secrets.json")
	gen, err := NewSecrets()
	if err != nil {
		return st, err
	}
	pgPassword, err := randomHex(32)
	if err != nil {
		return st, err
	}
	redisPassword, err := randomHex(32)
	if err != nil {
		return st, err
	}
	st = StoredSecrets{
		PostgresPassword:     pgPassword,
		RedisPassword:        redisPassword,
		SigningKey:           gen.SigningKey.Reveal(),
		BindingSecret:        gen.BindingSecret.Reveal(),
		GCClientSecret:       gen.GCClientSecret.Reveal(),
		MCClientSecret:       gen.MCClientSecret.Reveal(),
		VerifierClientSecret: gen.VerifierClientSecret.Reveal(),
		WebClientSecret:      gen.WebClientSecret.Reveal(),
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(l.StateDir, 0o755); err != nil {
		return st, err
	}
	tmp, err := os.CreateTemp(l.StateDir, ".secrets-*.json")
	if err != nil {
		return st, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return l.LoadSecrets() // another writer won; its secrets stand
	} else if err != nil {
		return st, fmt.Errorf("writing %s: %w", path, err)
	}
	return st, nil
}
