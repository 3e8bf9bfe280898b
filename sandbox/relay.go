package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
)

// Relay is how clients reach a sandbox's server: a listener on 127.0.0.1
// of this process, each connection handed to a driver's serve (an exec in
// the container, a port-forward stream).
//
// A sandbox holds a copy of production data and its server trusts whoever
// comes through (the images trust their own loopback, where the relay
// arrives), so the relay serves only processes of this process's user: any
// other local user's connection is closed unread. Where the owner of a
// connection cannot be told (outside Linux), it is served.
type Relay struct {
	ctx   context.Context // ends at Close
	stop  context.CancelFunc
	ln    net.Listener
	serve func(ctx context.Context, c net.Conn) error
	log   *slog.Logger
	mu    sync.Mutex
	conns map[net.Conn]bool // nil once closed
	wg    sync.WaitGroup
}

// NewRelay starts listening. serve carries one client connection to the
// server and returns when either side ends or its ctx does (at Close).
func NewRelay(serve func(ctx context.Context, c net.Conn) error, log *slog.Logger) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox relay: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Relay{ctx: ctx, stop: stop, ln: ln, serve: serve, log: log, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is where clients connect.
func (r *Relay) Addr() (string, int) {
	a := r.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		if err := ownPeer(c); err != nil {
			r.log.Warn("sandbox relay: connection refused", "peer", c.RemoteAddr().String(), "err", err)
			c.Close()
			continue
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			defer c.Close()
			if err := r.serve(r.ctx, c); err != nil {
				r.log.Debug("sandbox relay: connection ended", "err", err)
			}
		}()
	}
}

// ownPeer fails unless c comes from a process of this process's user, or
// its owner cannot be told here.
func ownPeer(c net.Conn) error {
	uid, known, err := peerUID(c)
	switch {
	case err != nil:
		return fmt.Errorf("its owner is unknown: %w", err)
	case known && uid != uint32(os.Getuid()):
		return fmt.Errorf("it comes from user %d, not this process's %d", uid, os.Getuid())
	}
	return nil
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		return false
	}
	r.conns[c] = true
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
}

// Close stops listening, cuts every connection and waits for their serve
// calls to return.
func (r *Relay) Close() {
	r.stop()
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
