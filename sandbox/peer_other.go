//go:build !linux

package sandbox

import "net"

// peerUID cannot tell the owner of a connection outside Linux.
func peerUID(net.Conn) (uint32, bool, error) { return 0, false, nil }
