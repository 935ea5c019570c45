// Command node-images builds the node's container images and pushes them to a running
// local registry (internal/node/images), then prints their references as JSON.
//
//	node-images --registry 127.0.0.1:5001 [--cache DIR] [--bin DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/darktower/devstack/internal/node/images"
)

func main() {
	cacheDefault := ""
	if d, err := os.UserCacheDir(); err == nil {
		cacheDefault = filepath.Join(d, "darktower-tools", "images")
	}
	registry := flag.String("registry", "", "host:port of the local registry (plain HTTP), e.g. 127.0.0.1:5001")
	cache := flag.String("cache", cacheDefault, "cache directory for the Debian base rootfs")
	bin := flag.String("bin", "bin", "directory holding the coredns and pause binaries")
	flag.Parse()
	if *registry == "" || *cache == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: node-images --registry HOST:PORT [--cache DIR] [--bin DIR]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	refs, err := images.Ensure(ctx, images.Options{Registry: *registry, CacheDir: *cache, BinDir: *bin, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(refs)
}
