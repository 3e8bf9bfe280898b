package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// A sandbox has no network: only its own loopback. The server is reached
// through the engine instead: a listener on 127.0.0.1 of this process
// relays each connection over an exec in the container (its stdin and
// stdout) to the server's port on the container's loopback. So nothing a
// restored dump runs in the server (COPY ... TO PROGRAM, a function opening
// a socket, a Redis library) can reach the host, the LAN or a metadata
// endpoint, and the engine need not be local.
//
// An internal Docker network is not enough: the container keeps a default
// route to the bridge's address on the host, and through it every host
// address (checked on Docker 20.10).

// LabelRelay on an image names the command that relays its stdin and stdout
// to a TCP port on the container's loopback, the port as its last argument.
// Without it the relay is bash's /dev/tcp, which images without bash (FROM
// scratch) cannot run.
const LabelRelay = "io.backproof.relay"

// bashRelay copies between stdio and 127.0.0.1:$1. The copy to the server
// holds no stdout or stderr of the exec, so the exec's output ends, and the
// client sees the close, when the server closes; the copy then ends with the
// exec's stdin. It is never killed: a PID in the container's namespace is
// soon another process's (a killed cat's PID, reused by a server process,
// once crashed the sandbox's PostgreSQL after the restore's COMMIT and lost
// the restore). A background job reads /dev/null unless told otherwise: "<&0".
const bashRelay = `exec 3<>/dev/tcp/127.0.0.1/"$1" || exit 1
cat <&0 >&3 2>/dev/null &
exec cat <&3`

func relayCommand(label string, port int) []string {
	p := strconv.Itoa(port)
	if label != "" {
		return append(strings.Fields(label), p)
	}
	return []string{"bash", "-c", bashRelay, "relay", p}
}

type tunnel struct {
	ctx   context.Context // ends at Close, with every exec call in flight
	stop  context.CancelFunc
	ln    net.Listener
	cli   *client.Client
	id    string
	cmd   []string
	log   *slog.Logger
	mu    sync.Mutex
	conns map[io.Closer]bool
	wg    sync.WaitGroup
}

func newTunnel(cli *client.Client, id string, cmd []string, log *slog.Logger) (*tunnel, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox relay: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t := &tunnel{ctx: ctx, stop: stop, ln: ln, cli: cli, id: id, cmd: cmd, log: log, conns: map[io.Closer]bool{}}
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

func (t *tunnel) port() int { return t.ln.Addr().(*net.TCPAddr).Port }

func (t *tunnel) serve() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return // closed
		}
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.untrack(c)
			if err := t.relay(c); err != nil {
				t.log.Debug("sandbox relay ended", "container", shortID(t.id), "err", err)
			}
		}()
	}
}

// relay carries one client connection through an exec in the container.
func (t *tunnel) relay(c net.Conn) error {
	defer c.Close()
	ctx := t.ctx
	ex, err := t.cli.ExecCreate(ctx, t.id, client.ExecCreateOptions{
		Cmd: t.cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return err
	}
	hj, err := t.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return err
	}
	if !t.track(hj.Conn) {
		hj.Close()
		return errors.New("tunnel closed")
	}
	defer t.untrack(hj.Conn)
	defer hj.Close()
	go func() {
		io.Copy(hj.Conn, c) //nolint:errcheck // ends with either side
		hj.CloseWrite()     //nolint:errcheck // the relay's stdin ends: the client is done
	}()
	stderr := &limited{max: 1024}
	_, err = stdcopy.StdCopy(c, stderr, hj.Reader)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		return fmt.Errorf("relay: %s", s)
	}
	return err
}

// track registers a connection Close must close; false once closed.
func (t *tunnel) track(c io.Closer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return false
	}
	t.conns[c] = true
	return true
}

func (t *tunnel) untrack(c io.Closer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// Close stops listening and cuts every relayed connection.
func (t *tunnel) Close() {
	t.stop()
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
	t.mu.Unlock()
	t.wg.Wait()
}

// limited keeps the first max bytes written to it.
type limited struct {
	max int
	b   []byte
}

func (l *limited) Write(p []byte) (int, error) {
	if n := l.max - len(l.b); n > 0 {
		l.b = append(l.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (l *limited) String() string { return string(l.b) }
