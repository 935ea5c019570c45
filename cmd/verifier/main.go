// Command verifier proves that a Dark Tower stack works: datastores, auth,
// registration, WebTransport and metrics. See `verifier help`.
package main

import (
	"context"
	"os"

	"github.com/darktower/devstack/verifier/cli"
	"github.com/darktower/devstack/verifier/report"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.IO{
		Stdout: os.Stdout, Stderr: os.Stderr, TTY: report.IsTerminal(os.Stdout),
	}))
}
