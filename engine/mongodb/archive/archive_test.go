package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/backproof/backproof/engine/mongodb/internal/spec"
	"github.com/backproof/backproof/internal/readn/readntest"
)

// doc marshals a test document.
func doc(t testing.TB, d bson.D) []byte {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sample is an archive of three namespaces: one with documents of many
// BSON types (Decimal128 among them), an empty collection and a view.
func sample(t testing.TB) (data []byte, docs [][]byte) {
	t.Helper()
	dec, _ := bson.ParseDecimal128("12345.6789")
	for i := range 5 {
		docs = append(docs, doc(t, bson.D{
			{Key: "_id", Value: bson.NewObjectID()},
			{Key: "n", Value: int32(i)}, {Key: "big", Value: int64(1) << 40}, {Key: "f", Value: 2.5},
			{Key: "price", Value: dec},
			{Key: "at", Value: bson.DateTime(1_700_000_000_000 + int64(i))},
			{Key: "uuid", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{byte(i)}, 16)}},
			{Key: "nested", Value: bson.D{{Key: "a", Value: bson.A{1, "two", bson.D{{Key: "three", Value: nil}}, bson.A{bson.A{}, bson.A{4}}}}}},
			{Key: "re", Value: bson.Regex{Pattern: "^x", Options: "i"}},
			{Key: "ts", Value: bson.Timestamp{T: 5, I: uint32(i)}},
			{Key: "min", Value: bson.MinKey{}},
		}))
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	err := w.Prelude(Header{ConcurrentCollections: 1, ServerVersion: "7.0.14", ToolVersion: "test"}, []Collection{
		{DB: "shop", Collection: "orders", Metadata: `{"indexes":[],"collectionName":"orders","type":"collection","options":{}}`, Type: "collection"},
		{DB: "shop", Collection: "empty", Metadata: `{"indexes":[],"collectionName":"empty","type":"collection","options":{}}`, Type: "collection"},
		{DB: "shop", Collection: "paid", Metadata: `{"indexes":[],"collectionName":"paid","type":"view","options":{"viewOn":"orders","pipeline":[]}}`, Type: "view"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := w.Namespace("shop", "orders")
	for _, d := range docs {
		if err := ns.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := ns.Count(); n != int64(len(docs)) {
		t.Errorf("Count %d, want %d", n, len(docs))
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"empty", "paid"} {
		if err := w.Namespace("shop", c).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), docs
}

// What Writer writes is an archive by the spec's grammar, parsed by a
// parser that shares no code with this package.
func TestWriterFollowsSpec(t *testing.T) {
	data, docs := sample(t)
	if !bytes.HasPrefix(data, []byte{0x6d, 0xe2, 0x99, 0x81}) {
		t.Fatalf("starts with % x", data[:4])
	}
	a, err := spec.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Header.Lookup("server_version").StringValue(); v != "7.0.14" {
		t.Errorf("server_version %q", v)
	}
	if len(a.Metadata) != 3 || a.Metadata[2].Lookup("type").StringValue() != "view" {
		t.Errorf("metadata %v", a.Metadata)
	}
	orders := a.Namespaces["shop.orders"]
	if orders.Segments != 1 || len(orders.Docs) != len(docs) {
		t.Fatalf("orders: %d segments, %d documents", orders.Segments, len(orders.Docs))
	}
	for i := range docs {
		if !bytes.Equal(orders.Docs[i], docs[i]) {
			t.Errorf("document %d changed", i)
		}
	}
	for _, ns := range []string{"shop.empty", "shop.paid"} {
		if n := a.Namespaces[ns]; n.Segments != 0 || n.CRC != 0 {
			t.Errorf("%s: %+v, want only an eof block", ns, n)
		}
	}
	if got := strings.Join(a.Order, ","); got != "shop.orders,shop.empty,shop.paid" {
		t.Errorf("eof order %s", got)
	}
}

func TestReaderReadsWriter(t *testing.T) {
	data, docs := sample(t)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.ServerVersion != "7.0.14" || r.Header.Version != FormatVersion || len(r.Prelude) != 3 || r.Prelude[2].Type != "view" {
		t.Fatalf("prelude %+v %+v", r.Header, r.Prelude)
	}
	var got [][]byte
	var ends []string
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if it.EOF {
			ends = append(ends, fmt.Sprintf("%s.%s:%d", it.DB, it.Collection, it.Docs))
			continue
		}
		got = append(got, bytes.Clone(it.Doc))
	}
	if len(got) != len(docs) {
		t.Fatalf("%d documents, want %d", len(got), len(docs))
	}
	for i := range docs {
		if !bytes.Equal(got[i], docs[i]) {
			t.Errorf("document %d changed", i)
		}
	}
	if s := strings.Join(ends, " "); s != "shop.orders:5 shop.empty:0 shop.paid:0" {
		t.Errorf("ends %s", s)
	}
}

// readAll reads an archive to its end.
func readAll(data []byte) error {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Every strict prefix of an archive is refused: a truncated artifact never
// restores as if it were whole.
func TestReaderRefusesEveryTruncation(t *testing.T) {
	data, _ := sample(t)
	if err := readAll(data); err != nil {
		t.Fatal(err)
	}
	for n := range len(data) {
		if err := readAll(data[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d/%d bytes: %v, want ErrFormat", n, len(data), err)
		}
	}
}

func TestReaderRefusesCorruption(t *testing.T) {
	data, docs := sample(t)
	first := bytes.Index(data, docs[0])
	cases := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"bad magic", func(b []byte) []byte { b[0] ^= 1; return b }, "not a mongodump archive"},
		{"flipped value byte", func(b []byte) []byte {
			// The int64 "big" field: framing intact, content changed.
			i := bytes.Index(b[first:], []byte("big\x00")) + first + 4
			b[i] ^= 0x01
			return b
		}, "CRC mismatch in shop.orders"},
		{"bad document length", func(b []byte) []byte { b[first] = 3; return b }, "neither a BSON document length"},
		{"missing NUL", func(b []byte) []byte { b[first+len(docs[0])-1] = 7; return b }, "does not end with a NUL"},
		{"trailing garbage", func(b []byte) []byte { return append(b, 1, 2, 3) }, "truncated"},
		{"unknown namespace", func(b []byte) []byte {
			return bytes.Replace(b, []byte("orders\x00\x08EOF"), []byte("orderz\x00\x08EOF"), 1)
		}, "prelude does not list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readAll(tc.edit(bytes.Clone(data)))
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrFormat with %q", err, tc.want)
			}
		})
	}
}

// A namespace's data after its end block, or an end block twice, is
// refused.
func TestReaderRefusesDataAfterEOF(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Prelude(Header{ServerVersion: "7.0.0"}, []Collection{{DB: "d", Collection: "c", Metadata: "{}"}}); err != nil {
		t.Fatal(err)
	}
	ns := w.Namespace("d", "c")
	if err := ns.Write(doc(t, bson.D{{Key: "_id", Value: 1}})); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	ns = w.Namespace("d", "c")
	ns.Write(doc(t, bson.D{{Key: "_id", Value: 2}}))
	ns.Close()
	w.Flush()
	if err := readAll(buf.Bytes()); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "after its end") {
		t.Fatalf("got %v", err)
	}
}

func TestWriterRefusesBadDocuments(t *testing.T) {
	good := doc(t, bson.D{{Key: "a", Value: 1}})
	for _, bad := range [][]byte{nil, {5, 0, 0, 0}, append(bytes.Clone(good), 0), good[:len(good)-1]} {
		w := NewWriter(io.Discard)
		ns := w.Namespace("d", "c")
		if err := ns.Write(bad); err == nil {
			t.Errorf("% x accepted", bad)
		}
	}
}

// A document length of 16 MiB followed by a few bytes fails as truncated
// without allocating 16 MiB.
func TestReaderClaimBoundedByInput(t *testing.T) {
	in := []byte{0x6d, 0xe2, 0x99, 0x81, 0x00, 0x00, 0x00, 0x01, 'a', 'b'}
	var err error
	n := readntest.Allocated(func() { _, err = NewReader(bytes.NewReader(in)) })
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("%x: %v, want a truncated archive", in, err)
	}
	if n > 1<<20 {
		t.Fatalf("a %d-byte archive allocated %d bytes", len(in), n)
	}
}

// FuzzReader: whatever the bytes, the reader ends with io.EOF or an error
// (ErrFormat for anything malformed), never a panic, in memory bounded by
// the input; and a namespace's end counts exactly the documents returned.
func FuzzReader(f *testing.F) {
	data, _ := sample(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(data[:4])
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("NewReader: %v, want ErrFormat", err)
			}
			return
		}
		docs := map[string]int64{}
		for {
			it, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("Next: %v, want ErrFormat", err)
				}
				return
			}
			ns := it.DB + "." + it.Collection
			if it.EOF {
				if it.Docs != docs[ns] {
					t.Fatalf("%s ends with %d documents, %d were returned", ns, it.Docs, docs[ns])
				}
				continue
			}
			if len(it.Doc) < 5 || int(binary.LittleEndian.Uint32(it.Doc)) != len(it.Doc) {
				t.Fatalf("document of %d bytes does not carry its length", len(it.Doc))
			}
			docs[ns]++
		}
	})
}
