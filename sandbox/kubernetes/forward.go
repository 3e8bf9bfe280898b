package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/backproof/backproof/sandbox"
)

// forward is a port-forward to a sandbox's server from outside the cluster:
// one connection to the Pod's portforward subresource, and a sandbox.Relay
// (this user's processes only) whose every client is a pair of streams on
// it, an error stream and a data stream, as kubectl port-forward makes them.
type forward struct {
	conn  httpstream.Connection
	port  int
	next  atomic.Int64 // request ids
	relay *sandbox.Relay
}

func (i *instance) portForward(ctx context.Context, port int) error {
	req := i.pods().subresource(http.MethodPost, i.name, "portforward", nil)
	transport, upgrader, err := spdy.RoundTripperFor(i.k.cfg)
	if err != nil {
		return err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	if ws, err := portforward.NewSPDYOverWebsocketDialer(req.URL(), i.k.cfg); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	type dialed struct {
		conn  httpstream.Connection
		proto string
		err   error
	}
	ch := make(chan dialed, 1)
	go func() {
		c, proto, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialed{c, proto, err}
	}()
	var d dialed
	select {
	case d = <-ch:
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				d.conn.Close()
			}
		}()
		return context.Cause(ctx)
	}
	if d.err != nil {
		return fmt.Errorf("port-forward to the sandbox: %v", d.err)
	}
	if d.proto != portforward.PortForwardProtocolV1Name {
		d.conn.Close()
		return fmt.Errorf("port-forward to the sandbox: the API server speaks %q, not %q", d.proto, portforward.PortForwardProtocolV1Name)
	}
	f := &forward{conn: d.conn, port: port}
	if f.relay, err = sandbox.NewRelay(f.serve, i.k.log); err != nil {
		d.conn.Close()
		return err
	}
	i.fwd = f
	i.host, i.port = f.relay.Addr()
	return nil
}

// serve carries one client connection to the server's port in the Pod.
func (f *forward) serve(ctx context.Context, c net.Conn) error {
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(f.port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.FormatInt(f.next.Add(1), 10))
	errStream, err := f.conn.CreateStream(h)
	if err != nil {
		return err
	}
	errStream.Close() // nothing is sent on it
	defer f.conn.RemoveStreams(errStream)
	remote := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errStream)
		if err == nil && len(msg) > 0 {
			err = errors.New(string(msg))
		}
		remote <- err
	}()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := f.conn.CreateStream(h)
	if err != nil {
		return err
	}
	defer f.conn.RemoveStreams(data)
	stop := context.AfterFunc(ctx, func() { data.Reset() }) //nolint:errcheck // the relay is closing
	defer stop()
	go func() {
		io.Copy(data, c) //nolint:errcheck // ends with either side
		data.Close()     // the client is done sending
	}()
	_, err = io.Copy(c, data)
	// The error stream ends once the data stream is reset, not before.
	data.Reset() //nolint:errcheck
	if rerr := <-remote; rerr != nil {
		return rerr
	}
	return err
}

// Close cuts every client and the connection to the Pod.
func (f *forward) Close() {
	f.relay.Close()
	f.conn.Close()
}
