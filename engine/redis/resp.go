package redis

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backproof/backproof/internal/readn"
)

// ServerError is an error reply of the server, e.g. "NOPERM ...".
type ServerError string

func (e ServerError) Error() string { return string(e) }

// Code is the error's first word: ERR, NOPERM, WRONGPASS, ...
func (e ServerError) Code() string {
	code, _, _ := strings.Cut(string(e), " ")
	return code
}

// value is one RESP2 reply.
type value struct {
	kind  byte // '+' simple string, ':' integer, '$' bulk string, '*' array
	str   string
	n     int64
	null  bool
	array []value
}

// Limits on what a reply may hold, so a confused server cannot make this
// process allocate without bound.
const (
	maxBulk  = 512 << 20
	maxArray = 1 << 20
	maxLine  = 64 << 10
)

// conn is a connection to a Redis server. It reads and writes through an
// idle timeout, and breaks off whatever it is doing when its context ends.
type conn struct {
	ctx    context.Context
	nc     *guardedConn
	rw     net.Conn // nc, or TLS over it
	r      *bufio.Reader
	w      *bufio.Writer
	stop   func() bool
	closed bool
}

// dial connects and authenticates. Errors never carry the password.
func dial(ctx context.Context, d *dsn, idle time.Duration) (*conn, error) {
	dl := net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	raw, err := dl.DialContext(ctx, "tcp", d.addr())
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("connect to %s: %w", d, err)
	}
	g := &guardedConn{Conn: raw, idle: idle}
	c := &conn{ctx: ctx, nc: g, rw: g}
	c.stop = context.AfterFunc(ctx, g.kill)
	if d.tls {
		cfg, err := d.tlsConfig()
		if err != nil {
			c.close()
			return nil, err
		}
		tc := tls.Client(g, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", d, c.cause(err))
		}
		c.rw = tc
	}
	c.r = bufio.NewReaderSize(c.rw, 1<<16)
	c.w = bufio.NewWriterSize(c.rw, 1<<16)
	if d.password != "" {
		args := []string{"AUTH", d.password}
		if d.user != "" {
			args = []string{"AUTH", d.user, d.password}
		}
		if _, err := c.do(args...); err != nil {
			c.close()
			return nil, fmt.Errorf("authenticate to %s as %s: %w", d, userName(d.user), err)
		}
	}
	return c, nil
}

func userName(u string) string {
	if u == "" {
		return "the default user"
	}
	return "user " + strconv.Quote(u)
}

// close closes the connection; it may be called more than once.
func (c *conn) close() {
	if c.closed {
		return
	}
	c.closed = true
	c.stop()
	c.rw.Close()
}

// do sends one command and reads its reply. An error reply is returned as
// a ServerError.
func (c *conn) do(args ...string) (value, error) {
	c.sendStrings(args...)
	if err := c.flush(); err != nil {
		return value{}, err
	}
	return c.receive()
}

func (c *conn) sendStrings(args ...string) {
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// send buffers one command; flush sends what is buffered.
func (c *conn) send(args ...[]byte) {
	c.w.WriteString("*")
	c.w.WriteString(strconv.Itoa(len(args)))
	c.w.WriteString("\r\n")
	for _, a := range args {
		c.w.WriteString("$")
		c.w.WriteString(strconv.Itoa(len(a)))
		c.w.WriteString("\r\n")
		c.w.Write(a)
		c.w.WriteString("\r\n")
	}
}

func (c *conn) flush() error {
	if err := c.w.Flush(); err != nil {
		return c.cause(err)
	}
	return nil
}

// receive reads one reply.
func (c *conn) receive() (value, error) {
	v, err := c.read(0)
	if err != nil {
		var se ServerError
		if !errors.As(err, &se) {
			err = c.cause(err)
		}
	}
	return v, err
}

func (c *conn) read(depth int) (value, error) {
	line, err := c.line()
	if err != nil {
		return value{}, err
	}
	if len(line) == 0 {
		return value{}, errors.New("protocol error: empty reply line")
	}
	v := value{kind: line[0]}
	body := line[1:]
	switch v.kind {
	case '-':
		return value{}, ServerError(body)
	case '+':
		v.str = body
	case ':':
		v.n, err = strconv.ParseInt(body, 10, 64)
	case '$':
		var n int64
		if n, err = strconv.ParseInt(body, 10, 64); err != nil || n < -1 || n > maxBulk {
			return value{}, fmt.Errorf("protocol error: bulk length %q", body)
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		buf, err := readn.Append(nil, c.r, int(n)+2) // grows as the bytes arrive
		if err != nil {
			return value{}, err
		}
		if string(buf[n:]) != "\r\n" {
			return value{}, fmt.Errorf("protocol error: bulk string of %d bytes not ended by CRLF", n)
		}
		v.str = string(buf[:n])
	case '*':
		var n int64
		if n, err = strconv.ParseInt(body, 10, 64); err != nil || n < -1 || n > maxArray || depth > 8 {
			return value{}, fmt.Errorf("protocol error: array length %q", body)
		}
		if n == -1 {
			v.null = true
			return v, nil
		}
		v.array = make([]value, 0, min(n, 1024))
		for range n {
			e, err := c.read(depth + 1)
			var se ServerError
			if errors.As(err, &se) { // an error inside an array is an element
				e, err = value{kind: '-', str: string(se)}, nil
			}
			if err != nil {
				return value{}, err
			}
			v.array = append(v.array, e)
		}
	default:
		return value{}, fmt.Errorf("protocol error: unexpected reply %q", truncate(line, 40))
	}
	if err != nil {
		return value{}, fmt.Errorf("protocol error: %q", truncate(line, 40))
	}
	return v, nil
}

// line reads one line without its CRLF.
func (c *conn) line() (string, error) {
	var b []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		b = append(b, chunk...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return "", err
		}
		if len(b) > maxLine {
			return "", errors.New("protocol error: reply line too long")
		}
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// cause turns an I/O error after the context ended into the context's cause.
func (c *conn) cause(err error) error {
	if c.ctx.Err() != nil {
		return context.Cause(c.ctx)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no data from the server for %s: %w", c.nc.idle, err)
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// guardedConn gives every read and write an idle timeout, and fails them
// all once killed.
type guardedConn struct {
	net.Conn
	idle time.Duration
	mu   sync.Mutex
	dead bool
}

var errKilled = errors.New("connection closed")

func (g *guardedConn) arm(set func(time.Time) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead {
		return errKilled
	}
	if g.idle > 0 {
		return set(time.Now().Add(g.idle))
	}
	return nil
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if err := g.arm(g.Conn.SetReadDeadline); err != nil {
		return 0, err
	}
	return g.Conn.Read(p)
}

func (g *guardedConn) Write(p []byte) (int, error) {
	if err := g.arm(g.Conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	return g.Conn.Write(p)
}

// kill fails every read and write from now on, blocked ones included.
func (g *guardedConn) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dead = true
	g.Conn.SetDeadline(time.Unix(1, 0))
}
