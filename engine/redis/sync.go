package redis

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// markLen is the length of the random marker that delimits a diskless
// snapshot ("$EOF:<40 bytes>" before it, the same 40 bytes after it).
const markLen = 40

// replicate asks the server for a full synchronization and returns a
// reader of exactly the RDB snapshot it sends. forked runs when the server
// starts the snapshot (on +FULLRESYNC, or for plain SYNC when the payload
// begins).
//
// The handshake: REPLCONF capa eof (diskless payloads are welcome) and
// capa psync2, REPLCONF rdb-only 1 (Redis 7+: send the snapshot and nothing
// after it; older servers refuse the option and that is fine), then
// PSYNC ? -1, falling back to SYNC for servers without PSYNC. While the
// server prepares the snapshot it sends a newline every second.
//
// A Valkey 8+ source is told REPLCONF version with its own version
// (announce): Valkey 9 writes a snapshot for a replica of the version it
// announces, RDB 11 for one that announces none, and aborts the sync when
// the data holds what RDB 11 cannot (hash fields with their own expiry).
// Announcing its own version gets its own RDB version, which this package
// reads.
func replicate(c *conn, log *slog.Logger, announce string, forked func()) (io.Reader, error) {
	if _, err := c.do("REPLCONF", "capa", "eof", "capa", "psync2"); err != nil {
		return nil, refused("REPLCONF", err)
	}
	if announce != "" {
		if _, err := c.do("REPLCONF", "version", announce); err != nil {
			var se ServerError
			if !errors.As(err, &se) || se.Code() == "NOPERM" {
				return nil, refused("REPLCONF", err)
			}
			log.Debug("server does not know REPLCONF version (Valkey 7.2)", "reply", se.Error())
		}
	}
	if _, err := c.do("REPLCONF", "rdb-only", "1"); err != nil {
		var se ServerError
		if !errors.As(err, &se) || se.Code() == "NOPERM" {
			return nil, refused("REPLCONF", err)
		}
		log.Debug("server does not know REPLCONF rdb-only; it will stream commands after the snapshot, which are not read", "reply", se.Error())
	}

	c.sendStrings("PSYNC", "?", "-1")
	if err := c.flush(); err != nil {
		return nil, err
	}
	line, err := c.replLine()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(line, "+FULLRESYNC "):
		forked()
		line, err = c.replLine()
	case strings.HasPrefix(line, "-"):
		psyncErr := ServerError(line[1:])
		log.Debug("PSYNC refused, trying SYNC", "reply", psyncErr.Error())
		c.sendStrings("SYNC")
		if err := c.flush(); err != nil {
			return nil, err
		}
		if line, err = c.replLine(); err == nil && strings.HasPrefix(line, "-") {
			return nil, refused("PSYNC and SYNC", fmt.Errorf("%w; SYNC: %w", psyncErr, ServerError(line[1:])))
		}
		forked()
	default:
		return nil, fmt.Errorf("unexpected reply to PSYNC: %q", truncate(line, 60))
	}
	if err != nil {
		return nil, err
	}
	return payload(c, line)
}

// payload interprets the snapshot's header line.
func payload(c *conn, line string) (io.Reader, error) {
	switch {
	case strings.HasPrefix(line, "-"):
		return nil, fmt.Errorf("the server could not produce a snapshot: %w", ServerError(line[1:]))
	case strings.HasPrefix(line, "$EOF:"):
		mark := line[len("$EOF:"):]
		if len(mark) != markLen {
			return nil, fmt.Errorf("protocol error: diskless snapshot marker of %d bytes", len(mark))
		}
		return &markReader{c: c, mark: []byte(mark), buf: make([]byte, 0, 64<<10)}, nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.ParseInt(line[1:], 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("protocol error: snapshot length %q", truncate(line, 40))
		}
		return &exactReader{c: c, left: n}, nil
	}
	return nil, fmt.Errorf("protocol error: unexpected %q where the snapshot should begin", truncate(line, 40))
}

// replLine reads the next line that is not a keepalive newline.
func (c *conn) replLine() (string, error) {
	for {
		line, err := c.line()
		if err != nil {
			return "", c.cause(err)
		}
		if line != "" {
			return line, nil
		}
	}
}

// refused explains a replication command the server refused.
func refused(cmd string, err error) error {
	var se ServerError
	if !errors.As(err, &se) {
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOPERM"):
		return fmt.Errorf("the server refused %s (%w): the backup user needs the ACL permissions +psync, +sync and +replconf "+
			"(e.g. ACL SETUSER backproof on >PASSWORD +psync +sync +replconf +info +ping)", cmd, err)
	case strings.Contains(strings.ToLower(msg), "unknown command"):
		return fmt.Errorf("the server does not offer %s (%w): replication commands are disabled or renamed, as on most managed "+
			"Redis services; backproof needs SYNC or PSYNC and REPLCONF to take a snapshot", cmd, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

// exactReader reads a snapshot of known length.
type exactReader struct {
	c    *conn
	left int64
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.c.r.Read(p)
	r.left -= int64(n)
	if err != nil {
		if err == io.EOF {
			return n, fmt.Errorf("connection closed with %d bytes of the snapshot missing", r.left)
		}
		return n, r.c.cause(err)
	}
	return n, nil
}

// markReader reads a diskless snapshot, which ends where the marker from
// its header shows up again. It holds back the last markLen bytes received
// until more arrive, and ends when those held bytes are the marker: as
// soon as the marker is in, without waiting for anything after it.
type markReader struct {
	c    *conn
	mark []byte
	buf  []byte // received, not yet returned; its tail is the newest data
	done bool
}

func (r *markReader) Read(p []byte) (int, error) {
	for {
		if r.done {
			return 0, io.EOF
		}
		if ready := len(r.buf) - markLen; ready > 0 {
			n := copy(p, r.buf[:ready])
			r.buf = r.buf[:copy(r.buf, r.buf[n:])]
			return n, nil
		}
		if len(r.buf) == markLen && string(r.buf) == string(r.mark) {
			r.done = true
			continue
		}
		free := r.buf[len(r.buf):cap(r.buf)]
		n, err := r.c.r.Read(free)
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			if err == io.EOF {
				return 0, errors.New("connection closed before the end of the snapshot")
			}
			return 0, r.c.cause(err)
		}
	}
}
