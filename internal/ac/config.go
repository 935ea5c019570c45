package ac

import (
	"crypto/ed25519"
	"time"

	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/secret"
)

// Config is what ac-service reads from its environment.
type Config struct {
	BindAddress string
	DatabaseURL secret.Value
	SigningSeed secret.Value // 32 raw bytes
	ClientsFile string
	Clients     []Client
	TokenTTL    time.Duration
	// ShutdownGrace is how long requests in flight may finish after SIGTERM.
	// AC has no variable for it: the shared default, not read from the environment.
	ShutdownGrace time.Duration
}

// LoadConfig reads and checks every setting, including the clients file, and
// returns the first problem as a *config.Error naming the variable.
func LoadConfig(r *config.Reader) (Config, error) {
	c := Config{
		BindAddress:   r.HostPort("BIND_ADDRESS", "0.0.0.0:8082"),
		DatabaseURL:   r.DatabaseURL(),
		SigningSeed:   r.SecretBase64("AC_SIGNING_KEY", ed25519.SeedSize),
		ClientsFile:   r.String("AC_CLIENTS_FILE"),
		TokenTTL:      r.Seconds("AC_TOKEN_TTL_SECONDS", time.Hour),
		ShutdownGrace: config.DefaultShutdownGrace,
	}
	if err := r.Err(); err != nil {
		return c, err
	}
	// Checked only once the settings above are sound: the seed is decoded and
	// the file named.
	if n := len(c.SigningSeed.Reveal()); n != ed25519.SeedSize {
		r.Fail("AC_SIGNING_KEY", "expected exactly %d bytes (an Ed25519 seed) after base64 decoding, got %d", ed25519.SeedSize, n)
		return c, r.Err()
	}
	clients, err := LoadClients(c.ClientsFile)
	if err != nil {
		r.Fail("AC_CLIENTS_FILE", "%s", err.Error())
		return c, r.Err()
	}
	c.Clients = clients
	return c, nil
}
