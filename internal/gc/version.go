package gc

import (
	"net/http"

	"github.com/darktower/devstack/internal/httpserver"
)

// Version is GC's release, logged at start and served at GET /version, so a
// deploy can be checked for the build it runs (the node tests change it and
// read it back from the new pods).
const Version = "0.9.0"

func versionHTTP(w http.ResponseWriter, _ *http.Request) {
	httpserver.WriteJSON(w, http.StatusOK, map[string]string{"service": "global-controller", "version": Version})
}
