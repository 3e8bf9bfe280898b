// Package archive writes and reads the mongodump archive format, version
// 0.1, as mongo-tools' common/archive/spec.md defines it:
//
//	magic number, header, collection metadata..., terminator,
//	then namespace segments (header, documents..., terminator)
//	and one EOF block per namespace (EOF header with the CRC-64 of all
//	its documents, terminator).
//
// `mongorestore --archive` reads what Writer writes. Documents pass through
// as raw BSON, never decoded.
package archive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/backproof/backproof/internal/readn"
)

// Magic starts every archive (stored little-endian: 6d e2 99 81).
const Magic uint32 = 0x8199e26d

// FormatVersion is the archive format version this package writes.
const FormatVersion = "0.1"

// terminator ends the prelude and every block.
const terminator uint32 = 0xffffffff

// MaxDocumentSize bounds one BSON document in an archive: the server's
// 16 MiB limit plus the headroom it allows internal documents.
const MaxDocumentSize = 16*1024*1024 + 16*1024

var crcTable = crc64.MakeTable(crc64.ECMA)

// ErrFormat marks input that is not a well-formed archive: bad magic, bad
// framing, a CRC mismatch, a namespace that never ends (a truncated file).
var ErrFormat = errors.New("malformed mongodump archive")

// Header is the archive's first document.
type Header struct {
	ConcurrentCollections int32  `bson:"concurrent_collections"`
	Version               string `bson:"version"`
	ServerVersion         string `bson:"server_version"`
	ToolVersion           string `bson:"tool_version"`
}

// Collection is one collection-metadata document of the prelude.
type Collection struct {
	DB         string `bson:"db"`
	Collection string `bson:"collection"`
	// Metadata is the collection's options, indexes and type in canonical
	// Extended JSON, as mongodump's metadata.json files hold them.
	Metadata string `bson:"metadata"`
	// Size is the collection's uncompressed size in bytes; advisory (the
	// prelude is written before the data; mongodump writes 0 too).
	Size int32  `bson:"size"`
	Type string `bson:"type,omitempty"` // collection, view, timeseries
}

// Namespace returns "db.collection".
func (c Collection) Namespace() string { return c.DB + "." + c.Collection }

// namespaceHeader opens a segment (EOF false, CRC 0) or ends a namespace.
type namespaceHeader struct {
	DB         string `bson:"db"`
	Collection string `bson:"collection"`
	EOF        bool   `bson:"EOF"`
	CRC        int64  `bson:"CRC"`
}

// Writer writes one archive. Namespaces are written one after the other.
type Writer struct {
	w   *bufio.Writer
	err error
	ns  *NamespaceWriter // the namespace being written
}

// NewWriter returns a Writer on w. Call Prelude first and Flush last.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 256<<10)}
}

// Prelude writes the magic number, the header and the metadata of every
// namespace the archive will hold.
func (a *Writer) Prelude(h Header, colls []Collection) error {
	if h.Version == "" {
		h.Version = FormatVersion
	}
	a.u32(Magic)
	a.doc(h)
	for _, c := range colls {
		a.doc(c)
	}
	a.u32(terminator)
	return a.err
}

// Namespace starts writing the documents of db.coll. Close the returned
// writer before starting the next namespace.
func (a *Writer) Namespace(db, coll string) *NamespaceWriter {
	if a.ns != nil && a.err == nil {
		a.err = fmt.Errorf("archive: namespace %s.%s still open", a.ns.db, a.ns.coll)
	}
	a.ns = &NamespaceWriter{a: a, db: db, coll: coll, crc: crc64.New(crcTable)}
	return a.ns
}

// Flush writes out what is buffered.
func (a *Writer) Flush() error {
	if a.err != nil {
		return a.err
	}
	a.err = a.w.Flush()
	return a.err
}

func (a *Writer) u32(v uint32) {
	if a.err == nil {
		_, a.err = a.w.Write(binary.LittleEndian.AppendUint32(nil, v))
	}
}

func (a *Writer) doc(v any) {
	if a.err != nil {
		return
	}
	b, err := bson.Marshal(v)
	if err != nil {
		a.err = err
		return
	}
	_, a.err = a.w.Write(b)
}

// NamespaceWriter writes the documents of one namespace.
type NamespaceWriter struct {
	a        *Writer
	db, coll string
	crc      hash.Hash64
	open     bool // a segment header was written
	docs     int64
	bytes    int64
}

// Write appends one raw BSON document.
func (n *NamespaceWriter) Write(doc []byte) error {
	a := n.a
	if a.err != nil {
		return a.err
	}
	if err := checkDocument(doc); err != nil {
		a.err = fmt.Errorf("archive: document %d of %s.%s: %w", n.docs+1, n.db, n.coll, err)
		return a.err
	}
	if !n.open {
		a.doc(namespaceHeader{DB: n.db, Collection: n.coll})
		n.open = true
	}
	n.crc.Write(doc)
	if a.err == nil {
		_, a.err = a.w.Write(doc)
	}
	n.docs++
	n.bytes += int64(len(doc))
	return a.err
}

// Close ends the namespace: the open segment's terminator, then the EOF
// block with the CRC of every document. A namespace without documents
// (an empty collection, a view) is only its EOF block.
func (n *NamespaceWriter) Close() error {
	a := n.a
	if a.ns != n {
		return a.err
	}
	a.ns = nil
	if n.open {
		a.u32(terminator)
	}
	a.doc(namespaceHeader{DB: n.db, Collection: n.coll, EOF: true, CRC: int64(n.crc.Sum64())})
	a.u32(terminator)
	return a.err
}

// Count returns how many documents and bytes were written so far.
func (n *NamespaceWriter) Count() (docs, bytes int64) { return n.docs, n.bytes }

// checkDocument checks the framing of one BSON document: its length prefix
// matches, and it ends in a NUL byte.
func checkDocument(doc []byte) error {
	if len(doc) < 5 {
		return fmt.Errorf("%d bytes is too short for a BSON document", len(doc))
	}
	if n := binary.LittleEndian.Uint32(doc); int(n) != len(doc) {
		return fmt.Errorf("length prefix %d does not match its %d bytes", n, len(doc))
	}
	if len(doc) > MaxDocumentSize {
		return fmt.Errorf("%d bytes exceeds the BSON size limit", len(doc))
	}
	if doc[len(doc)-1] != 0 {
		return errors.New("does not end with a NUL byte")
	}
	return nil
}

// Reader reads an archive: NewReader reads the prelude, Next the documents.
type Reader struct {
	r       *bufio.Reader
	Header  Header
	Prelude []Collection

	buf    []byte
	state  map[string]*nsState // by namespace
	cur    *nsState            // the segment being read, or nil between blocks
	closed int                 // namespaces whose EOF block was read
}

type nsState struct {
	db, coll string
	crc      hash.Hash64
	docs     int64
	done     bool
}

// NewReader reads the magic number and the prelude of the archive on r.
func NewReader(r io.Reader) (*Reader, error) {
	a := &Reader{r: bufio.NewReaderSize(r, 256<<10), state: map[string]*nsState{}}
	var magic [4]byte
	if _, err := io.ReadFull(a.r, magic[:]); err != nil {
		return nil, formatErr("reading the magic number: %v", err)
	}
	if binary.LittleEndian.Uint32(magic[:]) != Magic {
		return nil, formatErr("not a mongodump archive (magic number %x)", magic)
	}
	doc, term, err := a.next()
	switch {
	case errors.Is(err, io.EOF):
		return nil, formatErr("archive ends before its header (truncated)")
	case err != nil:
		return nil, fmt.Errorf("archive header: %w", err)
	case term:
		return nil, formatErr("archive has no header")
	}
	if err := unmarshal(doc, &a.Header); err != nil {
		return nil, formatErr("archive header: %v", err)
	}
	if a.Header.Version != FormatVersion {
		return nil, formatErr("archive format version %q, want %s", a.Header.Version, FormatVersion)
	}
	for {
		doc, term, err := a.next()
		if errors.Is(err, io.EOF) {
			return nil, formatErr("archive ends in its prelude (truncated)")
		}
		if err != nil {
			return nil, fmt.Errorf("archive prelude: %w", err)
		}
		if term {
			break
		}
		var c Collection
		if err := unmarshal(doc, &c); err != nil {
			return nil, formatErr("collection metadata %d: %v", len(a.Prelude)+1, err)
		}
		ns := c.Namespace()
		if c.Collection == "" || a.state[ns] != nil {
			return nil, formatErr("collection metadata %d: empty or repeated namespace %q", len(a.Prelude)+1, ns)
		}
		a.Prelude = append(a.Prelude, c)
		a.state[ns] = &nsState{db: c.DB, coll: c.Collection, crc: crc64.New(crcTable)}
	}
	return a, nil
}

// Item is what Next returns: one document of a namespace, or that
// namespace's end (EOF, with its CRC verified and its document count).
type Item struct {
	DB, Collection string
	// Doc is a raw BSON document, valid until the next call of Next.
	Doc  []byte
	EOF  bool
	Docs int64 // at EOF: how many documents the namespace held
}

// Next returns the next document or namespace end. At the end of the
// archive it returns io.EOF, or an ErrFormat error when a namespace of the
// prelude never ended (the archive is truncated).
func (a *Reader) Next() (Item, error) {
	for {
		doc, term, err := a.next()
		if errors.Is(err, io.EOF) {
			if a.cur != nil {
				return Item{}, formatErr("archive ends inside a segment of %s.%s (truncated)", a.cur.db, a.cur.coll)
			}
			return Item{}, a.finish()
		}
		if err != nil {
			return Item{}, err
		}
		if a.cur == nil { // a block header
			if term {
				return Item{}, formatErr("a terminator where a namespace header belongs")
			}
			var h namespaceHeader
			if err := unmarshal(doc, &h); err != nil {
				return Item{}, formatErr("namespace header: %v", err)
			}
			ns := h.DB + "." + h.Collection
			st := a.state[ns]
			switch {
			case st == nil:
				return Item{}, formatErr("data for %s, which the prelude does not list", ns)
			case st.done:
				return Item{}, formatErr("data for %s after its end", ns)
			}
			if h.EOF {
				if err := a.expectTerminator(ns); err != nil {
					return Item{}, err
				}
				if got := int64(st.crc.Sum64()); got != h.CRC {
					return Item{}, formatErr("CRC mismatch in %s: documents sum to %d, the archive recorded %d", ns, got, h.CRC)
				}
				st.done = true
				a.closed++
				return Item{DB: st.db, Collection: st.coll, EOF: true, Docs: st.docs}, nil
			}
			a.cur = st
			continue
		}
		if term { // end of a segment
			a.cur = nil
			continue
		}
		st := a.cur
		st.crc.Write(doc)
		st.docs++
		return Item{DB: st.db, Collection: st.coll, Doc: doc}, nil
	}
}

// finish checks, at the end of the input, that every namespace ended.
func (a *Reader) finish() error {
	if a.closed == len(a.Prelude) {
		return io.EOF
	}
	var open []string
	for _, c := range a.Prelude {
		if !a.state[c.Namespace()].done {
			open = append(open, c.Namespace())
		}
	}
	if len(open) > 3 {
		open = append(open[:3], fmt.Sprintf("and %d more", len(open)-3))
	}
	return formatErr("archive ends before %s ended (truncated?)", strings.Join(open, ", "))
}

func (a *Reader) expectTerminator(ns string) error {
	_, term, err := a.next()
	if errors.Is(err, io.EOF) {
		return formatErr("archive ends inside the end block of %s (truncated)", ns)
	}
	if err != nil {
		return err
	}
	if !term {
		return formatErr("end block of %s is not terminated", ns)
	}
	return nil
}

// next reads a terminator or one BSON document. A clean end of input
// before the first byte is io.EOF; anything else cut short is ErrFormat.
func (a *Reader) next() (doc []byte, term bool, err error) {
	var lenb [4]byte
	if _, err := io.ReadFull(a.r, lenb[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false, io.EOF
		}
		return nil, false, truncated(err)
	}
	n := binary.LittleEndian.Uint32(lenb[:])
	if n == terminator {
		return nil, true, nil
	}
	if n < 5 || n > MaxDocumentSize {
		return nil, false, formatErr("%d is neither a BSON document length nor a terminator", n)
	}
	// The buffer grows with the bytes that arrive, not with the length
	// the input claims.
	doc, err = readn.Append(append(a.buf[:0], lenb[:]...), a.r, int(n)-4)
	a.buf = doc[:0]
	if err != nil {
		return nil, false, truncated(err)
	}
	if doc[n-1] != 0 {
		return nil, false, formatErr("a BSON document of %d bytes does not end with a NUL byte", n)
	}
	return doc, false, nil
}

// unmarshal decodes a document read from the archive once its structure
// holds: the driver's decoder loops forever on some malformed documents
// (an element length of -29, found by FuzzReader).
func unmarshal(doc []byte, v any) error {
	if err := bsoncore.Document(doc).Validate(); err != nil {
		return err
	}
	return bson.Unmarshal(doc, v)
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return formatErr("archive ends in the middle of a document (truncated)")
	}
	return err // an I/O error of the underlying reader
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}
