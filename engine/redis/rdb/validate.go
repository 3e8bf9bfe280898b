// Package rdb reads Redis RDB files: it checks their framing and CRC-64 as
// they stream past (Validator), walks their entries (Reader) and turns an
// entry into the payload the RESTORE command takes.
package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Errors about an RDB file itself.
var (
	// ErrCorrupt: the file is truncated, has a wrong checksum or is not an
	// RDB file at all.
	ErrCorrupt = errors.New("corrupt RDB")
	// ErrNoChecksum: the server wrote the file with rdbchecksum off, so its
	// content cannot be checked (the framing was).
	ErrNoChecksum = errors.New("RDB written without a checksum (rdbchecksum no)")
)

const (
	magic      = "REDIS"
	headerLen  = len(magic) + 4 // "REDIS0010"
	minVersion = 5              // the first version with a trailing CRC-64
	opEOF      = 0xff
	// Valkey 9 writes RDB versions past Redis's range (80 and up) behind its
	// own magic, three digits: "VALKEY080", as long as Redis's header.
	valkeyMagic = "VALKEY"
	// ValkeyMinVersion is the first RDB version only Valkey writes; Valkey
	// treats 12 to 79 as Redis's (foreign) versions.
	ValkeyMinVersion = 80
)

// Validator checks an RDB file written to it: the "REDIS" magic and a
// version with a checksum (or Valkey's "VALKEY" and a version of its own), the EOF opcode and the trailing CRC-64 over
// everything before it. Write fails at once on a wrong header; Check says
// whether the whole file was right once it has been written.
type Validator struct {
	head    [headerLen]byte
	headN   int
	version int
	n       int64
	crc     uint64
	last    byte    // the last byte covered by crc: the EOF opcode in a whole file
	tail    [8]byte // the last 8 bytes written: the checksum in a whole file
	tailN   int
}

// Write implements io.Writer.
func (v *Validator) Write(p []byte) (int, error) {
	if v.headN < headerLen {
		k := copy(v.head[v.headN:], p)
		v.headN += k
		if err := v.checkHeader(); err != nil {
			return 0, err
		}
	}
	v.n += int64(len(p))
	if len(p) >= 8 {
		v.sum(v.tail[:v.tailN])
		v.sum(p[:len(p)-8])
		v.tailN = copy(v.tail[:], p[len(p)-8:])
		return len(p), nil
	}
	if drop := v.tailN + len(p) - 8; drop > 0 {
		v.sum(v.tail[:drop])
		v.tailN = copy(v.tail[:], v.tail[drop:v.tailN])
	}
	v.tailN += copy(v.tail[v.tailN:], p)
	return len(p), nil
}

func (v *Validator) sum(p []byte) {
	if len(p) > 0 {
		v.crc = CRC64(v.crc, p)
		v.last = p[len(p)-1]
	}
}

// checkHeader checks as much of the header as has arrived.
func (v *Validator) checkHeader() error {
	h := v.head[:v.headN]
	m := magic
	if len(h) > 0 && h[0] == valkeyMagic[0] {
		m = valkeyMagic
	}
	for i, c := range h {
		if i < len(m) && c != m[i] || i >= len(m) && (c < '0' || c > '9') {
			return fmt.Errorf("%w: not an RDB file (starts with %q)", ErrCorrupt, h)
		}
	}
	if v.headN == headerLen {
		v.version, _ = strconv.Atoi(string(h[len(m):]))
		if m == valkeyMagic && v.version < ValkeyMinVersion {
			return fmt.Errorf("%w: Valkey RDB header %q with version %d, below Valkey's own versions", ErrCorrupt, h, v.version)
		}
		if v.version < minVersion {
			return fmt.Errorf("%w: RDB version %d has no checksum (Redis older than 2.6)", ErrCorrupt, v.version)
		}
	}
	return nil
}

// Version is the RDB format version, once the header has been written.
func (v *Validator) Version() int { return v.version }

// Size is how many bytes were written.
func (v *Validator) Size() int64 { return v.n }

// Check reports whether what was written is a whole RDB file: ErrCorrupt
// when it is not, ErrNoChecksum when it is framed right but carries no
// checksum to check its content against.
func (v *Validator) Check() error {
	if v.n < int64(headerLen)+1+8 || v.version == 0 {
		return fmt.Errorf("%w: truncated: %d bytes", ErrCorrupt, v.n)
	}
	if v.last != opEOF {
		return fmt.Errorf("%w: truncated: no end-of-file marker before the checksum (%d bytes)", ErrCorrupt, v.n)
	}
	stored := binary.LittleEndian.Uint64(v.tail[:])
	switch stored {
	case v.crc:
		return nil
	case 0:
		return ErrNoChecksum
	}
	return fmt.Errorf("%w: CRC-64 %016x, the file records %016x (%d bytes)", ErrCorrupt, v.crc, stored, v.n)
}
