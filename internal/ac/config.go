package ac

import (
	"crypto/ed25519"
	"fmt"
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
}

// ReadConfig reads and checks every setting, including the clients file, and
// returns the first problem as a *config.Error naming the variable.
func ReadConfig(r *config.Reader) (Config, error) {
	c := Config{
		BindAddress: r.HostPort("BIND_ADDRESS", "0.0.0.0:8082"),
		DatabaseURL: r.Secret("DATABASE_URL"),
		SigningSeed: r.SecretBase64("AC_SIGNING_KEY", ed25519.SeedSize),
		ClientsFile: r.String("AC_CLIENTS_FILE"),
		TokenTTL:    r.Seconds("AC_TOKEN_TTL_SECONDS", time.Hour),
	}
	if !c.DatabaseURL.Empty() {
		r.URL("DATABASE_URL", "postgres", "postgresql")
	}
	if err := r.Err(); err != nil {
		return c, err
	}
	if n := len(c.SigningSeed.Reveal()); n != ed25519.SeedSize {
		return c, &config.Error{Name: "AC_SIGNING_KEY", Msg: fmt.Sprintf("expected exactly %d bytes (an Ed25519 seed) after base64 decoding, got %d", ed25519.SeedSize, n)}
	}
	clients, err := LoadClients(c.ClientsFile)
	if err != nil {
		return c, &config.Error{Name: "AC_CLIENTS_FILE", Msg: err.Error()}
	}
	c.Clients = clients
	return c, nil
}
