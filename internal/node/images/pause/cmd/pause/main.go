// Command pause is the node's pause container (package pause): `make bin/pause`
// builds it static, and internal/node/images puts it in an image as /pause.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/darktower/devstack/internal/node/images/pause"
)

// version is what -v prints.
const version = "darktower-pause 1.0"

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "-v" || os.Args[1] == "--version" {
			fmt.Println(version)
			return
		}
		fmt.Fprintln(os.Stderr, "usage: pause [-v]")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	pause.Run(context.Background(), os.Stderr)
}
