// Command ac-service is the auth controller: it issues client-credentials
// tokens to the other services and publishes the JWKS they validate with.
// Logic lives in internal/ac.
package main

import (
	"github.com/darktower/devstack/internal/ac"
	"github.com/darktower/devstack/internal/config"
)

func main() { config.Main("ac-service", ac.LoadConfig, ac.Run) }
