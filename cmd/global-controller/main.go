// Command global-controller runs GC: the meeting-controller registry (gRPC),
// its HTTP API, and the staleness sweeper. Logic lives in internal/gc.
package main

import (
	"github.com/darktower/devstack/internal/config"
	"github.com/darktower/devstack/internal/gc"
)

func main() { config.Main("global-controller", gc.LoadConfig, gc.Run) }
