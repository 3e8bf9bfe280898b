// Command pause is the Pod sandbox's pause process for the test cluster's
// containerd (no registry to pull registry.k8s.io/pause from).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
