// Command backproof takes scheduled logical backups of service databases,
// writes them to several destinations and proves they restore.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/backproof/backproof/cli"
)

// Set by the linker: -X main.version=... -X main.commit=...
var version, commit = "dev", ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, cli.Build{Version: version, Commit: commit})
	stop()
	os.Exit(code)
}
