package sandbox

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// peerUID finds this process's own loopback connections, over IPv4 and IPv6.
func TestPeerUID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux tells")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (no such loopback here)", addr, err)
			continue
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		uid, known, err := peerUID(server)
		if err != nil || !known || uid != uint32(os.Getuid()) {
			t.Errorf("%s: peerUID = %d, %v, %v; want %d", addr, uid, known, err, os.Getuid())
		}
	}
}

// A relay serves this user's connections, and Close ends those in flight.
func TestRelay(t *testing.T) {
	served := make(chan struct{})
	r, err := NewRelay(func(ctx context.Context, c net.Conn) error {
		close(served)
		_, err := io.Copy(c, c) // echo until Close cuts c
		return err
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	host, port := r.Addr()
	c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	<-served
	r.Close() // returns once serve has
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("after Close the connection still reads (%d bytes)", n)
	}
}
