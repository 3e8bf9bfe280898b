package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrUnsupported: the file holds something this reader does not know how to
// walk (a newer value type or opcode, a pre-release module format). The
// file may well be valid.
var ErrUnsupported = errors.New("unsupported RDB content")

// Opcodes.
const (
	opSlotInfo      = 0xf4 // 7.4+: cluster slot sizes
	opFunction2     = 0xf5 // a function library
	opFunctionPreGA = 0xf6 // 7.0 release candidates
	opModuleAux     = 0xf7
	opIdle          = 0xf8
	opFreq          = 0xf9
	opAux           = 0xfa
	opResizeDB      = 0xfb
	opExpireTimeMs  = 0xfc
	opExpireTime    = 0xfd
	opSelectDB      = 0xfe
)

// Value types.
const (
	typeString             = 0
	typeList               = 1
	typeSet                = 2
	typeZset               = 3
	typeHash               = 4
	typeZset2              = 5
	typeModule             = 6
	typeModule2            = 7
	typeHashZipmap         = 9
	typeListZiplist        = 10
	typeSetIntset          = 11
	typeZsetZiplist        = 12
	typeHashZiplist        = 13
	typeListQuicklist      = 14
	typeStreamListpacks    = 15
	typeHashListpack       = 16
	typeZsetListpack       = 17
	typeListQuicklist2     = 18
	typeStreamListpacks2   = 19
	typeSetListpack        = 20
	typeStreamListpacks3   = 21
	typeHashMetadataPreGA  = 22
	typeHashListpackExPre  = 23
	typeHashMetadata       = 24
	typeHashListpackEx     = 25
	maxType                = typeHashListpackEx
	moduleOpcodeEOF        = 0
	moduleOpcodeSint       = 1
	moduleOpcodeUint       = 2
	moduleOpcodeFloat      = 3
	moduleOpcodeDouble     = 4
	moduleOpcodeString     = 5
	encInt8, encInt16      = 0, 1
	encInt32, encLZF       = 2, 3
	len6, len14, lenEncVal = 0, 1, 3
	len32, len64           = 0x80, 0x81
)

// Kind says what an Entry is.
type Kind int

const (
	// Key: a key and its value.
	Key Kind = iota
	// Function: a function library (Redis 7+).
	Function
)

// Entry is one key, or one function library, of an RDB file.
type Entry struct {
	Kind Kind
	DB   int
	Key  []byte
	// Type is the RDB value type, and Value the value as the file
	// serializes it: together they are what DUMP returns, before its
	// footer. Value is nil unless the Reader keeps values.
	Type  byte
	Value []byte
	// ExpireMs is the key's expiry in Unix milliseconds; 0: none.
	ExpireMs int64
	// Code is a Function entry's library source.
	Code []byte
}

// TypeName is the type TYPE reports for a key of this RDB type.
func TypeName(t byte) string {
	switch t {
	case typeString:
		return "string"
	case typeList, typeListZiplist, typeListQuicklist, typeListQuicklist2:
		return "list"
	case typeSet, typeSetIntset, typeSetListpack:
		return "set"
	case typeZset, typeZset2, typeZsetZiplist, typeZsetListpack:
		return "zset"
	case typeHash, typeHashZipmap, typeHashZiplist, typeHashListpack,
		typeHashMetadataPreGA, typeHashListpackExPre, typeHashMetadata, typeHashListpackEx:
		return "hash"
	case typeStreamListpacks, typeStreamListpacks2, typeStreamListpacks3:
		return "stream"
	case typeModule, typeModule2:
		return "module"
	}
	return "unknown"
}

// Reader walks an RDB file entry by entry. Every byte it consumes goes
// through a Validator, so the file's checksum is checked when the end is
// reached: Next returns io.EOF only for a whole, intact file.
type Reader struct {
	r       *bufio.Reader
	v       Validator
	keep    bool
	capture []byte // the value being read, when keeping values
	taking  bool
	scratch []byte
	db      int
	maxDB   int
	noSum   bool // the file carries no checksum
	done    bool
	offset  int64
}

// NewReader reads the header of the RDB file in r. With keepValues, every
// Key entry carries its serialized value (restores need it); without, values
// are skipped (a walk that only counts).
func NewReader(r io.Reader, keepValues bool) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 1<<16), keep: keepValues, scratch: make([]byte, 1<<16)}
	head := rd.scratch[:headerLen]
	if _, err := io.ReadFull(rd.r, head); err != nil {
		return nil, rd.readError(err)
	}
	if _, err := rd.v.Write(head); err != nil {
		return nil, err
	}
	rd.offset = int64(headerLen)
	return rd, nil
}

// Version is the file's RDB format version.
func (r *Reader) Version() int { return r.v.version }

// Next returns the next entry, or io.EOF after the last one once the file's
// end and checksum proved right. ErrCorrupt: the file is damaged;
// ErrUnsupported: it holds what this reader cannot walk.
func (r *Reader) Next() (*Entry, error) {
	if r.done {
		return nil, io.EOF
	}
	var expire int64
	for {
		op, err := r.byte()
		if err != nil {
			return nil, err
		}
		switch op {
		case opEOF:
			return nil, r.end()
		case opSelectDB:
			db, err := r.length()
			if err != nil {
				return nil, err
			}
			if db > 1<<20 {
				return nil, r.corrupt("database number %d", db)
			}
			r.db = int(db)
			r.maxDB = max(r.maxDB, r.db)
		case opResizeDB:
			err = r.skipLengths(2)
		case opSlotInfo:
			err = r.skipLengths(3)
		case opExpireTimeMs:
			var b []byte
			if b, err = r.read(8); err == nil {
				expire = int64(binary.LittleEndian.Uint64(b))
			}
		case opExpireTime:
			var b []byte
			if b, err = r.read(4); err == nil {
				expire = int64(int32(binary.LittleEndian.Uint32(b))) * 1000
			}
		case opIdle:
			_, err = r.length()
		case opFreq:
			_, err = r.read(1)
		case opAux:
			if err = r.skipString(); err == nil {
				err = r.skipString()
			}
		case opModuleAux:
			err = r.moduleAux()
		case opFunction2:
			code, err := r.string()
			if err != nil {
				return nil, err
			}
			return &Entry{Kind: Function, DB: r.db, Code: code}, nil
		case opFunctionPreGA:
			return nil, r.unsupported("a function library in the format of Redis 7.0 release candidates")
		default:
			return r.key(op, expire)
		}
		if err != nil {
			return nil, err
		}
	}
}

// key reads a key of type t and its value.
func (r *Reader) key(t byte, expire int64) (*Entry, error) {
	if t > maxType || t == 8 {
		return nil, r.unsupported("value type %d", t)
	}
	key, err := r.string()
	if err != nil {
		return nil, err
	}
	r.taking, r.capture = r.keep, r.capture[:0]
	err = r.value(t)
	r.taking = false
	if err != nil {
		return nil, err
	}
	e := &Entry{Kind: Key, DB: r.db, Key: key, Type: t, ExpireMs: expire}
	if r.keep {
		e.Value = append([]byte(nil), r.capture...)
	}
	return e, nil
}

// value skips over one serialized value of type t.
func (r *Reader) value(t byte) error {
	switch t {
	case typeString, typeHashZipmap, typeListZiplist, typeSetIntset, typeZsetZiplist,
		typeHashZiplist, typeHashListpack, typeZsetListpack, typeSetListpack, typeHashListpackExPre:
		return r.skipString()
	case typeList, typeSet, typeListQuicklist:
		return r.repeat(func() error { return r.skipString() })
	case typeHash:
		return r.repeat(func() error { return r.skipStrings(2) })
	case typeZset:
		return r.repeat(func() error {
			if err := r.skipString(); err != nil {
				return err
			}
			return r.skipDouble()
		})
	case typeZset2:
		return r.repeat(func() error {
			if err := r.skipString(); err != nil {
				return err
			}
			_, err := r.read(8)
			return err
		})
	case typeListQuicklist2:
		return r.repeat(func() error {
			if _, err := r.length(); err != nil { // container: packed or plain
				return err
			}
			return r.skipString()
		})
	case typeHashMetadataPreGA:
		if r.v.version >= ValkeyMinVersion {
			return r.valkeyHash2()
		}
		fallthrough
	case typeHashMetadata:
		if t == typeHashMetadata {
			if _, err := r.read(8); err != nil { // the smallest field expiry
				return err
			}
		}
		return r.repeat(func() error {
			if _, err := r.length(); err != nil { // the field's expiry
				return err
			}
			return r.skipStrings(2)
		})
	case typeHashListpackEx:
		if _, err := r.read(8); err != nil {
			return err
		}
		return r.skipString()
	case typeStreamListpacks, typeStreamListpacks2, typeStreamListpacks3:
		return r.stream(t)
	case typeModule2:
		if _, err := r.length(); err != nil { // module type id
			return err
		}
		return r.moduleValue()
	case typeModule:
		return r.unsupported("a module value in the pre-release format")
	}
	return r.unsupported("value type %d", t)
}

// stream skips a stream: its listpacks, metadata and consumer groups.
func (r *Reader) stream(t byte) error {
	// Listpacks, each keyed by a master ID.
	if err := r.repeat(func() error { return r.skipStrings(2) }); err != nil {
		return err
	}
	meta := 3 // length, last ID
	if t >= typeStreamListpacks2 {
		meta += 5 // first ID, max deleted ID, entries added
	}
	if err := r.skipLengths(meta); err != nil {
		return err
	}
	return r.repeat(func() error { // consumer groups
		if err := r.skipString(); err != nil {
			return err
		}
		n := 2 // last delivered ID
		if t >= typeStreamListpacks2 {
			n++ // entries read
		}
		if err := r.skipLengths(n); err != nil {
			return err
		}
		err := r.repeat(func() error { // pending entries: ID, delivery time, count
			if _, err := r.read(16 + 8); err != nil {
				return err
			}
			_, err := r.length()
			return err
		})
		if err != nil {
			return err
		}
		return r.repeat(func() error { // consumers
			if err := r.skipString(); err != nil {
				return err
			}
			times := 8 // seen
			if t >= typeStreamListpacks3 {
				times += 8 // active
			}
			if _, err := r.read(times); err != nil {
				return err
			}
			return r.repeat(func() error { _, err := r.read(16); return err })
		})
	})
}

// moduleAux skips module data that belongs to no key.
func (r *Reader) moduleAux() error {
	if _, err := r.length(); err != nil { // module id
		return err
	}
	when, err := r.length()
	if err != nil {
		return err
	}
	if when != moduleOpcodeUint {
		return r.corrupt("module aux data with opcode %d", when)
	}
	if _, err := r.length(); err != nil {
		return err
	}
	return r.moduleValue()
}

// moduleValue skips a module value in the self-describing format of module
// serialization version 2, up to its EOF opcode.
func (r *Reader) moduleValue() error {
	for {
		op, err := r.length()
		if err != nil {
			return err
		}
		switch op {
		case moduleOpcodeEOF:
			return nil
		case moduleOpcodeSint, moduleOpcodeUint:
			_, err = r.length()
		case moduleOpcodeFloat:
			_, err = r.read(4)
		case moduleOpcodeDouble:
			_, err = r.read(8)
		case moduleOpcodeString:
			err = r.skipString()
		default:
			return r.corrupt("module value opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

// end reads the checksum after the EOF opcode and checks the whole file.
func (r *Reader) end() error {
	if _, err := r.read(8); err != nil {
		return err
	}
	if err := r.v.Check(); errors.Is(err, ErrNoChecksum) {
		r.noSum = true
	} else if err != nil {
		return err
	}
	if b, err := r.r.ReadByte(); err != io.EOF {
		if err == nil {
			r.v.Write([]byte{b}) //nolint:errcheck // past the header
			return r.corrupt("data after the end of the file")
		}
		return err
	}
	r.done = true
	return io.EOF
}

// repeat reads a count, then calls f that many times.
func (r *Reader) repeat(f func() error) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// valkeyHash2 skips Valkey 9's hash with fields of their own expiry (type
// 22 in Valkey's RDB versions, Redis 7.4's pre-release type 22 in Redis's):
// the count, then each field, its value and its expiry in Unix ms (-1:
// none), 8 bytes.
func (r *Reader) valkeyHash2() error {
	return r.repeat(func() error {
		if err := r.skipStrings(2); err != nil {
			return err
		}
		_, err := r.read(8)
		return err
	})
}

func (r *Reader) skipLengths(n int) error {
	for range n {
		if _, err := r.length(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) skipStrings(n int) error {
	for range n {
		if err := r.skipString(); err != nil {
			return err
		}
	}
	return nil
}

// lengthOrEncoding reads a length, or the special encoding of a string.
func (r *Reader) lengthOrEncoding() (n uint64, encoded bool, err error) {
	b, err := r.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case len6:
		return uint64(b & 0x3f), false, nil
	case len14:
		c, err := r.byte()
		return uint64(b&0x3f)<<8 | uint64(c), false, err
	case lenEncVal:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case len32:
		p, err := r.read(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case len64:
		p, err := r.read(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, r.corrupt("length encoding 0x%02x", b)
}

func (r *Reader) length() (uint64, error) {
	n, enc, err := r.lengthOrEncoding()
	if err == nil && enc {
		err = r.corrupt("encoded value where a length belongs")
	}
	return n, err
}

// skipString skips a string in any of its encodings.
func (r *Reader) skipString() error {
	n, enc, err := r.lengthOrEncoding()
	if err != nil {
		return err
	}
	if !enc {
		return r.skip(n)
	}
	switch n {
	case encInt8:
		return r.skip(1)
	case encInt16:
		return r.skip(2)
	case encInt32:
		return r.skip(4)
	case encLZF:
		clen, err := r.length()
		if err != nil {
			return err
		}
		if _, err := r.length(); err != nil {
			return err
		}
		return r.skip(clen)
	}
	return r.corrupt("string encoding %d", n)
}

// maxString bounds the strings string() returns: keys and function
// libraries (Redis itself caps strings at 512 MB).
const maxString = 512 << 20

// string reads a string, decoded.
func (r *Reader) string() ([]byte, error) {
	n, enc, err := r.lengthOrEncoding()
	if err != nil {
		return nil, err
	}
	if !enc {
		return r.readCopy(n)
	}
	switch n {
	case encInt8:
		b, err := r.read(1)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, int64(int8(b[0])), 10), nil
	case encInt16:
		b, err := r.read(2)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, int64(int16(binary.LittleEndian.Uint16(b))), 10), nil
	case encInt32:
		b, err := r.read(4)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(nil, int64(int32(binary.LittleEndian.Uint32(b))), 10), nil
	case encLZF:
		clen, err := r.length()
		if err != nil {
			return nil, err
		}
		ulen, err := r.length()
		if err != nil {
			return nil, err
		}
		if ulen > maxString {
			return nil, r.corrupt("string of %d bytes", ulen)
		}
		c, err := r.readCopy(clen)
		if err != nil {
			return nil, err
		}
		out, err := lzfDecompress(c, int(ulen))
		if err != nil {
			return nil, r.corrupt("%v", err)
		}
		return out, nil
	}
	return nil, r.corrupt("string encoding %d", n)
}

// skipDouble skips a double in the text form of the first sorted set type.
func (r *Reader) skipDouble() error {
	n, err := r.byte()
	if err != nil {
		return err
	}
	if n >= 253 { // NaN, +inf, -inf
		return nil
	}
	return r.skip(uint64(n))
}

func (r *Reader) byte() (byte, error) {
	b, err := r.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// read consumes n bytes (n <= 64 KiB) and returns them; the slice is valid
// until the next read.
func (r *Reader) read(n int) ([]byte, error) {
	b := r.scratch[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, r.readError(err)
	}
	r.consumed(b)
	return b, nil
}

// readCopy consumes n bytes into a new slice. It grows the slice as the
// bytes arrive, so a corrupt length cannot allocate more than the file holds.
func (r *Reader) readCopy(n uint64) ([]byte, error) {
	if n > maxString {
		return nil, r.corrupt("string of %d bytes", n)
	}
	out := make([]byte, 0, min(n, uint64(len(r.scratch))))
	for n > 0 {
		b, err := r.read(int(min(n, uint64(len(r.scratch)))))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		n -= uint64(len(b))
	}
	return out, nil
}

// skip consumes n bytes.
func (r *Reader) skip(n uint64) error {
	for n > 0 {
		b, err := r.read(int(min(n, uint64(len(r.scratch)))))
		if err != nil {
			return err
		}
		n -= uint64(len(b))
	}
	return nil
}

func (r *Reader) consumed(b []byte) {
	r.v.Write(b) //nolint:errcheck // only the header can fail, and NewReader checked it
	if r.taking {
		r.capture = append(r.capture, b...)
	}
	r.offset += int64(len(b))
}

func (r *Reader) readError(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated at byte %d", ErrCorrupt, r.offset)
	}
	return err
}

func (r *Reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, r.offset, fmt.Sprintf(format, args...))
}

func (r *Reader) unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrUnsupported, r.offset, fmt.Sprintf(format, args...))
}
