package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// A sandbox has no network: only its own loopback. The server is reached
// through the engine instead: a sandbox.Relay on 127.0.0.1 of this process
// carries each connection over an exec in the container (its stdin and
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

// execRelay returns a sandbox.Relay serve func that carries each client
// connection through an exec of cmd in container id.
func execRelay(cli *client.Client, id string, cmd []string) func(context.Context, net.Conn) error {
	return func(ctx context.Context, c net.Conn) error {
		ex, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{
			Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		})
		if err != nil {
			return err
		}
		hj, err := cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
		if err != nil {
			return err
		}
		defer hj.Close()
		stop := context.AfterFunc(ctx, hj.Close) // the relay is closing
		defer stop()
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
