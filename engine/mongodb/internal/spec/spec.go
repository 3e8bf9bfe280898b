// Package spec parses a mongodump archive strictly by the grammar of
// mongo-tools' common/archive/spec.md, sharing no code with package
// archive, so tests can hold what archive writes against the spec itself:
//
//	archive           = magic-number, header, *collection-metadata, terminator-bytes,
//	                    *(namespace-segment | namespace-eof)
//	magic-number      = 0x6de29981 (the bytes 6d e2 99 81)
//	namespace-segment = namespace-header, +document, terminator-bytes
//	namespace-eof     = eof-header, terminator-bytes
package spec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc64"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Archive is a parsed archive.
type Archive struct {
	Header     bson.Raw
	Metadata   []bson.Raw // collection-metadata documents
	Namespaces map[string]*Namespace
	Order      []string // namespaces in the order their EOF blocks came
}

// Namespace is the content of one namespace.
type Namespace struct {
	Docs     []bson.Raw
	Segments int
	CRC      int64 // from the eof-header, checked
}

// Parse parses b, which must be exactly one archive.
func Parse(b []byte) (*Archive, error) {
	p := &parser{b: b}
	if !bytes.HasPrefix(b, []byte{0x6d, 0xe2, 0x99, 0x81}) {
		return nil, fmt.Errorf("magic number: got % x", b[:min(4, len(b))])
	}
	p.off = 4
	a := &Archive{Namespaces: map[string]*Namespace{}}
	h, err := p.document("header")
	if err != nil {
		return nil, err
	}
	if err := fields(h, map[string]bson.Type{
		"concurrent_collections": bson.TypeInt32, "version": bson.TypeString,
		"server_version": bson.TypeString, "tool_version": bson.TypeString,
	}, nil); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if v := h.Lookup("version").StringValue(); v != "0.1" {
		return nil, fmt.Errorf("header: version %q, want 0.1", v)
	}
	a.Header = h
	crcs := map[string]uint64{}
	for !p.terminator() {
		m, err := p.document("collection-metadata")
		if err != nil {
			return nil, err
		}
		if err := fields(m, map[string]bson.Type{
			"db": bson.TypeString, "collection": bson.TypeString,
			"metadata": bson.TypeString, "size": bson.TypeInt32,
		}, map[string]bson.Type{"type": bson.TypeString}); err != nil { // mongodump writes "type" too
			return nil, fmt.Errorf("collection-metadata %d: %w", len(a.Metadata)+1, err)
		}
		var meta bson.Raw
		if err := bson.UnmarshalExtJSON([]byte(m.Lookup("metadata").StringValue()), true, &meta); err != nil {
			return nil, fmt.Errorf("collection-metadata %d: metadata is not canonical Extended JSON: %w", len(a.Metadata)+1, err)
		}
		ns := m.Lookup("db").StringValue() + "." + m.Lookup("collection").StringValue()
		if a.Namespaces[ns] != nil {
			return nil, fmt.Errorf("collection-metadata: %s twice", ns)
		}
		a.Namespaces[ns] = &Namespace{}
		a.Metadata = append(a.Metadata, m)
	}
	p.off += 4
	ended := map[string]bool{}
	for p.off < len(p.b) {
		hd, err := p.document("namespace header")
		if err != nil {
			return nil, err
		}
		if err := fields(hd, map[string]bson.Type{
			"db": bson.TypeString, "collection": bson.TypeString,
			"EOF": bson.TypeBoolean, "CRC": bson.TypeInt64,
		}, nil); err != nil {
			return nil, fmt.Errorf("namespace header at %d: %w", p.off, err)
		}
		ns := hd.Lookup("db").StringValue() + "." + hd.Lookup("collection").StringValue()
		n := a.Namespaces[ns]
		switch {
		case n == nil:
			return nil, fmt.Errorf("namespace %s is not in the prelude", ns)
		case ended[ns]:
			return nil, fmt.Errorf("namespace %s after its eof-header", ns)
		}
		crc := hd.Lookup("CRC").Int64()
		if hd.Lookup("EOF").Boolean() {
			if !p.terminator() {
				return nil, fmt.Errorf("eof-header of %s: no terminator after it", ns)
			}
			p.off += 4
			if want := int64(crcs[ns]); crc != want {
				return nil, fmt.Errorf("eof-header of %s: CRC %d, the documents give %d", ns, crc, want)
			}
			n.CRC = crc
			ended[ns] = true
			a.Order = append(a.Order, ns)
			continue
		}
		if crc != 0 {
			return nil, fmt.Errorf("namespace-header of %s: CRC %d, always 0", ns, crc)
		}
		n.Segments++
		docs := 0
		for !p.terminator() {
			d, err := p.document("document of " + ns)
			if err != nil {
				return nil, err
			}
			crcs[ns] = crc64.Update(crcs[ns], crc64.MakeTable(crc64.ECMA), d)
			n.Docs = append(n.Docs, d)
			docs++
		}
		if docs == 0 {
			return nil, fmt.Errorf("namespace-segment of %s holds no document (+document)", ns)
		}
		p.off += 4
	}
	for ns := range a.Namespaces {
		if !ended[ns] {
			return nil, fmt.Errorf("namespace %s has no eof-header", ns)
		}
	}
	return a, nil
}

type parser struct {
	b   []byte
	off int
}

func (p *parser) terminator() bool {
	return p.off+4 <= len(p.b) && binary.LittleEndian.Uint32(p.b[p.off:]) == 0xffffffff
}

// document reads one BSON document and validates it completely.
func (p *parser) document(what string) (bson.Raw, error) {
	if p.off+4 > len(p.b) {
		return nil, fmt.Errorf("%s at %d: end of input", what, p.off)
	}
	n := int(binary.LittleEndian.Uint32(p.b[p.off:]))
	if n < 5 || p.off+n > len(p.b) {
		return nil, fmt.Errorf("%s at %d: length %d out of bounds", what, p.off, n)
	}
	d := bson.Raw(p.b[p.off : p.off+n])
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("%s at %d: %w", what, p.off, err)
	}
	p.off += n
	return d, nil
}

// fields checks that d has exactly the named fields with those types, and
// of the optional ones only those with their type.
func fields(d bson.Raw, want map[string]bson.Type, optional map[string]bson.Type) error {
	elems, err := d.Elements()
	if err != nil {
		return err
	}
	seen := 0
	for _, el := range elems {
		t, ok := want[el.Key()]
		if !ok {
			if t, ok := optional[el.Key()]; ok && el.Value().Type == t {
				continue
			}
			return fmt.Errorf("unexpected field %q", el.Key())
		}
		if el.Value().Type != t {
			return fmt.Errorf("field %q is %s, want %s", el.Key(), el.Value().Type, t)
		}
		seen++
	}
	if seen != len(want) {
		return fmt.Errorf("has %d of the %d fields %v", seen, len(want), keys(want))
	}
	return nil
}

func keys(m map[string]bson.Type) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
