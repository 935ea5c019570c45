// Command meeting-controller hosts meetings: it registers with the global
// controller, accepts meeting assignments over gRPC and serves WebTransport.
// Configuration comes from the environment (see internal/mc.LoadConfig).
package main

import (
	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/mc"
)

func main() { config.Main("meeting-controller", mc.LoadConfig, mc.Run) }
