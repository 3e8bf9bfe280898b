package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// withCRC appends the EOF opcode and the CRC-64 of everything to body.
func withCRC(body string) []byte {
	b := append([]byte(body), opEOF)
	return binary.LittleEndian.AppendUint64(b, CRC64(0, b))
}

// Valkey 9 writes "VALKEY080": its own magic and three digits, RDB 80 on.
func TestValkeyHeader(t *testing.T) {
	for _, chunk := range []int{1, 3, 64} {
		var v Validator
		for data := withCRC("VALKEY080"); len(data) > 0; {
			n := min(chunk, len(data))
			if _, err := v.Write(data[:n]); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			data = data[n:]
		}
		if err := v.Check(); err != nil || v.Version() != 80 {
			t.Errorf("chunk %d: version %d, %v", chunk, v.Version(), err)
		}
	}
	rd, err := NewReader(bytes.NewReader(withCRC("VALKEY081")), false)
	if err != nil || rd.Version() != 81 {
		t.Fatalf("reader: %v", err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Errorf("empty Valkey file: %v", err)
	}
	for _, bad := range []string{"VALKEY011", "VALKEX080", "VALKEY08x", "REDIS080\x00"} {
		if err := validate(withCRC(bad), 4); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v, want ErrCorrupt", bad, err)
		}
	}
}

// A Valkey 9.1 SAVE of a hash whose field "goes" has an expiry (HEXPIRE):
// RDB 80, type 22 (Valkey's hash with field expiries).
func TestValkeyHashTTL(t *testing.T) {
	data, err := os.ReadFile("testdata/valkey9-hash-ttl.rdb")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(bytes.NewReader(data), true)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := rd.Next()
	if err != nil || string(ent.Key) != "h" || TypeName(ent.Type) != "hash" || rd.Version() != 80 {
		t.Fatalf("entry %+v, version %d: %v", ent, rd.Version(), err)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Errorf("after the hash: %v, want the end of an intact file", err)
	}
}
