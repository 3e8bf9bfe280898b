package postgres

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
)

// The custom archive format, as pg_dump writes it to a pipe: a header, the
// table of contents, then one block per data entry in dump order. Archive
// versions 1.12 (PostgreSQL 9.x) to 1.16 (17 and 18) are read; anything
// else is an unknown layout and the rows are counted on the server instead.
const (
	archiveMinMinor = 12
	archiveMaxMinor = 16

	blockData  = 1
	blockBlobs = 3

	// A TOC entry's data offset flag (pg_backup_archiver.h).
	offsetNotSet = 1
	offsetSet    = 2

	// Names of schemas and tables are at most 63 bytes; descriptions are
	// short. Anything longer is read past, never kept.
	maxKeptString = 256
)

// errArchiveLayout means the stream is not an archive this reader knows.
var errArchiveLayout = errors.New("unknown archive layout")

type tableKey struct{ schema, name string }

// archiveRows reads an uncompressed custom-format archive from r to its end
// and counts the COPY rows of every TABLE DATA entry: in COPY's text format
// each row ends with one newline and newlines inside values are escaped.
// Every byte of r is read, even after an error of layout, so a reader that
// passes the stream on (a TeeReader) passes all of it. Errors from r itself
// are returned as they are; a layout error wraps errArchiveLayout.
func archiveRows(r io.Reader) (map[tableKey]int64, error) {
	a := &archive{r: bufio.NewReaderSize(r, 1<<20)}
	rows, err := a.rows()
	if err == nil {
		return rows, nil
	}
	if errors.Is(err, errArchiveLayout) {
		if derr := a.drain(); derr != nil {
			return nil, derr
		}
	}
	return nil, err
}

type archive struct {
	r                    *bufio.Reader
	minor                int
	intSize, offSize     int
	tag, desc, namespace []byte // of the entry being read

	// Only when positions are tracked (indexData): what has been read
	// from the file, the data offsets left unset and the data blocks, each
	// by dump id and position.
	read          *countingReader
	unset, blocks map[int64]int64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// pos is the position in the file of the next byte to be read.
func (a *archive) pos() int64 { return a.read.n - int64(a.r.Buffered()) }

// dataIndex is where an archive's data blocks are (by dump id), and where
// its table of contents has a data offset pg_dump left unset because it
// wrote to a pipe.
type dataIndex struct {
	offSize       int
	size          int64 // of the archive
	unset, blocks map[int64]int64
}

// indexData reads an uncompressed custom-format archive to its end. An
// archive of a layout this reader does not know is errArchiveLayout.
func indexData(r io.Reader) (*dataIndex, error) {
	read := &countingReader{r: r}
	a := &archive{r: bufio.NewReaderSize(read, 1<<20), read: read,
		unset: make(map[int64]int64), blocks: make(map[int64]int64)}
	if _, err := a.walk(false); err != nil {
		return nil, err
	}
	return &dataIndex{offSize: a.offSize, size: read.n, unset: a.unset, blocks: a.blocks}, nil
}

// largest returns the size of the largest data block and of all of them.
func (ix *dataIndex) largest() (largest, all int64) {
	at := slices.Sorted(maps.Values(ix.blocks))
	for i, p := range at {
		end := ix.size
		if i+1 < len(at) {
			end = at[i+1]
		}
		largest = max(largest, end-p)
		all += end - p
	}
	return largest, all
}

// setOffsets writes into the archive file at path the position of every
// data block whose offset is unset, as pg_dump writes them back when its
// output is a file, and returns how many it set. With them, each worker of
// pg_restore --jobs seeks to its block instead of reading through every
// block before it. pg_restore checks that the block at an offset has the
// entry's dump id.
func (ix *dataIndex) setOffsets(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := ix.writeOffsets(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (ix *dataIndex) writeOffsets(w io.WriterAt) (int, error) {
	var buf [9]byte
	set := 0
	for id, at := range ix.unset {
		block, ok := ix.blocks[id]
		if !ok || ix.offSize < 8 && block>>(8*ix.offSize) != 0 {
			continue
		}
		buf[0] = offsetSet
		for i := range ix.offSize {
			buf[1+i] = byte(block >> (8 * i))
		}
		if _, err := w.WriteAt(buf[:1+ix.offSize], at); err != nil {
			return set, err
		}
		set++
	}
	return set, nil
}

func (a *archive) layout(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errArchiveLayout, fmt.Sprintf(format, args...))
}

func (a *archive) rows() (map[tableKey]int64, error) { return a.walk(true) }

// walk reads the archive to its end: its table of contents, then every data
// block, counting COPY rows when asked to.
func (a *archive) walk(count bool) (map[tableKey]int64, error) {
	tables, err := a.header()
	if err != nil {
		return nil, err
	}
	rows := make(map[tableKey]int64, len(tables))
	for {
		var at int64
		if a.blocks != nil {
			at = a.pos()
		}
		kind, err := a.r.ReadByte()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		id, err := a.int()
		if err != nil {
			return nil, err
		}
		if a.blocks != nil {
			if _, twice := a.blocks[id]; twice {
				return nil, a.layout("two data blocks of entry %d", id)
			}
			a.blocks[id] = at
		}
		switch kind {
		case blockData:
			key, counted := tables[id]
			counted = counted && count
			n, err := a.chunks(counted)
			if err != nil {
				return nil, err
			}
			if counted {
				rows[key] += n
			}
		case blockBlobs:
			for {
				oid, err := a.int()
				if err != nil {
					return nil, err
				}
				if oid == 0 {
					break
				}
				if _, err := a.chunks(false); err != nil {
					return nil, err
				}
			}
		default:
			return nil, a.layout("block type %d", kind)
		}
	}
}

// header reads the archive's header and table of contents and returns the
// TABLE DATA entries by dump id.
func (a *archive) header() (map[int64]tableKey, error) {
	magic := make([]byte, len(archiveMagic)+3)
	if _, err := io.ReadFull(a.r, magic); err != nil {
		return nil, a.eof(err)
	}
	if !bytes.HasPrefix(magic, archiveMagic) {
		return nil, a.layout("no PGDMP magic")
	}
	major, minor := magic[5], magic[6]
	if major != 1 || minor < archiveMinMinor || minor > archiveMaxMinor {
		return nil, a.layout("archive version %d.%d", major, minor)
	}
	a.minor = int(minor)
	var sizes [3]byte
	if _, err := io.ReadFull(a.r, sizes[:]); err != nil {
		return nil, a.eof(err)
	}
	a.intSize, a.offSize = int(sizes[0]), int(sizes[1])
	if a.intSize < 1 || a.intSize > 8 || a.offSize < 1 || a.offSize > 8 {
		return nil, a.layout("integer size %d, offset size %d", a.intSize, a.offSize)
	}
	if sizes[2] != 1 { // archCustom
		return nil, a.layout("format %d", sizes[2])
	}
	var compressed int64
	if a.minor >= 15 {
		b, err := a.byte()
		if err != nil {
			return nil, err
		}
		compressed = int64(b)
	} else if v, err := a.int(); err != nil {
		return nil, err
	} else {
		compressed = v
	}
	if compressed != 0 {
		return nil, a.layout("compressed data (%d)", compressed)
	}
	for range 7 { // creation time: sec, min, hour, mday, mon, year, isdst
		if _, err := a.int(); err != nil {
			return nil, err
		}
	}
	for range 3 { // database name, server and pg_dump versions
		if _, err := a.str(); err != nil {
			return nil, err
		}
	}

	count, err := a.int()
	if err != nil {
		return nil, err
	}
	if count < 0 {
		return nil, a.layout("%d entries", count)
	}
	tables := make(map[int64]tableKey)
	for range count {
		id, key, isData, err := a.entry()
		if err != nil {
			return nil, err
		}
		if isData {
			tables[id] = key
		}
	}
	return tables, nil
}

// entry reads one table-of-contents entry (ReadToc and the custom format's
// ReadExtraToc in pg_backup_archiver.c and pg_backup_custom.c).
func (a *archive) entry() (id int64, key tableKey, isData bool, err error) {
	if id, err = a.int(); err != nil {
		return
	}
	if _, err = a.int(); err != nil { // had a data dumper
		return
	}
	for range 2 { // table oid, oid
		if _, err = a.str(); err != nil {
			return
		}
	}
	// Kept in the reader's buffers; only a TABLE DATA entry's become strings.
	if a.tag, err = a.keep(a.tag); err != nil {
		return
	}
	if a.desc, err = a.keep(a.desc); err != nil {
		return
	}
	if _, err = a.int(); err != nil { // section
		return
	}
	for range 3 { // definition, drop and copy statements
		if _, err = a.str(); err != nil {
			return
		}
	}
	if a.namespace, err = a.keep(a.namespace); err != nil {
		return
	}
	if _, err = a.str(); err != nil { // tablespace
		return
	}
	if a.minor >= 14 {
		if _, err = a.str(); err != nil { // table access method
			return
		}
	}
	if a.minor >= 16 {
		if _, err = a.int(); err != nil { // relkind
			return
		}
	}
	for range 2 { // owner, "with oids"
		if _, err = a.str(); err != nil {
			return
		}
	}
	for { // dependencies, ended by a null string
		var null bool
		if null, err = a.str(); err != nil || null {
			break
		}
	}
	if err != nil {
		return
	}
	var at int64
	if a.unset != nil {
		at = a.pos()
	}
	var flag byte
	if flag, err = a.byte(); err != nil { // data offset: flag, then offSize bytes
		return
	}
	if a.unset != nil && flag == offsetNotSet {
		a.unset[id] = at
	}
	if _, err = a.r.Discard(a.offSize); err != nil {
		err = a.eof(err)
		return
	}
	if string(a.desc) != "TABLE DATA" {
		return id, tableKey{}, false, nil
	}
	return id, tableKey{string(a.namespace), string(a.tag)}, true, nil
}

// chunks reads a data block's length-prefixed chunks up to the empty one,
// counting COPY rows when asked to: the newlines before pg_dump's end-of-data
// line, "\\." alone, which is followed by blank lines. No row is "\\." (COPY
// doubles every backslash of a value), and a table without columns has one
// empty line per row, so only what follows the marker is left out.
//
// pg_dump writes a chunk per row, so chunks are walked in the read buffer
// rather than read one by one.
func (a *archive) chunks(count bool) (int64, error) {
	var lines int64
	var end tail // the block's last bytes, where the marker is
	hdr := 1 + a.intSize
	var left int64 // bytes of the current chunk not yet read
	for {
		need := 1
		if left == 0 {
			need = hdr
		}
		w, err := a.r.Peek(max(need, a.r.Buffered()))
		if len(w) < need {
			return 0, a.eof(err)
		}
		i := 0
		for i < len(w) {
			if left == 0 {
				if len(w)-i < hdr {
					break // the next header is not all read yet
				}
				n, err := a.decodeInt(w[i : i+hdr])
				if err != nil {
					return 0, err
				}
				i += hdr
				if n == 0 {
					a.r.Discard(i) //nolint:errcheck // i bytes are buffered
					return lines - afterMarker(end.bytes()), nil
				}
				if n < 0 {
					return 0, a.layout("chunk of %d bytes", n)
				}
				left = n
			}
			k := int(min(left, int64(len(w)-i)))
			if count {
				lines += int64(bytes.Count(w[i:i+k], []byte{'\n'}))
				end.add(w[i : i+k])
			}
			i += k
			left -= int64(k)
		}
		a.r.Discard(i) //nolint:errcheck // i bytes are buffered
	}
}

// tail keeps the last bytes written to it.
type tail struct {
	b [64]byte
	n int
}

func (t *tail) add(p []byte) {
	if len(p) >= len(t.b) {
		t.n = copy(t.b[:], p[len(p)-len(t.b):])
		return
	}
	keep := min(t.n, len(t.b)-len(p))
	copy(t.b[:keep], t.b[t.n-keep:t.n])
	t.n = keep + copy(t.b[keep:], p)
}

func (t *tail) bytes() []byte { return t.b[:t.n] }

// afterMarker returns how many newlines end data that ends with the line
// "\." and blank lines, or 0 for data that does not.
func afterMarker(tail []byte) int64 {
	body := bytes.TrimRight(tail, "\n")
	k := int64(len(tail) - len(body))
	if k == 0 || !bytes.HasSuffix(body, []byte(`\.`)) {
		return 0
	}
	if rest := body[:len(body)-2]; len(rest) > 0 && rest[len(rest)-1] != '\n' {
		return 0 // "\." ends a longer line: a row
	}
	return k
}

func (a *archive) byte() (byte, error) {
	b, err := a.r.ReadByte()
	return b, a.eof(err)
}

// int reads pg_dump's integer: a sign byte, then intSize bytes, least
// significant first.
func (a *archive) int() (int64, error) {
	b, err := a.r.Peek(1 + a.intSize)
	if err != nil {
		return 0, a.eof(err)
	}
	a.r.Discard(len(b)) //nolint:errcheck // peeked
	return a.decodeInt(b)
}

func (a *archive) decodeInt(b []byte) (int64, error) {
	var v uint64
	for i, c := range b[1:] {
		v |= uint64(c) << (8 * i)
	}
	if v > 1<<62 {
		return 0, a.layout("integer out of range")
	}
	if b[0] != 0 {
		return -int64(v), nil
	}
	return int64(v), nil
}

// str reads past a length-prefixed string; a negative length is a null
// string.
func (a *archive) str() (null bool, err error) {
	n, err := a.int()
	if err != nil || n < 0 {
		return n < 0, err
	}
	return false, a.skip(n)
}

func (a *archive) skip(n int64) error {
	for n > 0 {
		k, err := a.r.Discard(int(min(n, 1<<20)))
		if err != nil {
			return a.eof(err)
		}
		n -= int64(k)
	}
	return nil
}

// keep reads a string into buf, or reads past it and keeps nothing when it
// is longer than any name (maxKeptString).
func (a *archive) keep(buf []byte) ([]byte, error) {
	n, err := a.int()
	if err != nil || n < 0 {
		return buf[:0], err
	}
	if n > maxKeptString {
		return buf[:0], a.skip(n)
	}
	buf = append(buf[:0], make([]byte, n)...)
	if _, err := io.ReadFull(a.r, buf); err != nil {
		return buf[:0], a.eof(err)
	}
	return buf, nil
}

// eof turns an end of stream inside a structure into a layout error: the
// archive is cut short. Other read errors pass unchanged.
func (a *archive) eof(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return a.layout("archive ends early")
	}
	return err
}

// drain reads what is left of the stream.
func (a *archive) drain() error {
	for {
		if _, err := a.r.Discard(1 << 20); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}
