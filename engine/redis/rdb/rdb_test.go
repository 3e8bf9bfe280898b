package rdb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	"github.com/backproof/backproof/internal/readn/readntest"
)

// testdata/types-v10.rdb was saved by Debian's redis-server 7.0.15: in db 0
// strings (plain, integer-encoded, LZF-compressed), a list, sets (intset,
// listpack, hashtable), sorted sets, hashes, a stream with a consumer group
// and a pending entry, a key with an expiry; in db 3 one key with an expiry;
// and one function library. Its DUMP payloads below were taken from the
// same server with the file loaded.
func fixture(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/types-v10.rdb")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var fixtureDumps = map[string]string{
	"s1":    "000568656c6c6f0a006372df766534200a",
	"int":   "00c139300a009d94ea2793fc08b9",
	"neg":   "00c0f90a005e26d130d7a242ab",
	"big":   "00c32a4bb8016161e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e0ff00e053000161610a00c445e2af2126d963",
	"list1": "1201021414000000050081610281620281630201010201ff0a00cb19745cc3eafb0d",
	"set1":  "0b0e02000000030000000100020003000a00a5025ce26d6e4d1b",
	"z1":    "111d1d0000000600816302842d696e6605816102010181620283322e3504ff0a003992339be11f323d",
	"h1":    "101717000000040082663103827631038266320382763203ff0a0003f84c0c15d4a2bc",
	"st":    "130110000001a2015c58210000000000000000c3262b102b00000011000201000101018161020001400a400c000420054003201606620202010601ff0281000001a2015c58250081000001a2015c5821000000020102673181000001a2015c5821000101000001a2015c582100000000000000002c585c01a201000001010263312c585c01a201000001000001a2015c582100000000000000000a00296a567644e8d1c4",
}

func TestCRC64(t *testing.T) {
	if got := CRC64(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("CRC-64/Jones of 123456789 = %016x", got)
	}
	// Eight bytes a step agrees with one byte a step, over any split.
	data := fixture(t)
	whole := CRC64(0, data)
	for _, cut := range []int{1, 7, 8, 9, 100, len(data) - 1} {
		if got := CRC64(CRC64(0, data[:cut]), data[cut:]); got != whole {
			t.Errorf("split at %d: %016x, want %016x", cut, got, whole)
		}
	}
}

func validate(data []byte, chunk int) error {
	var v Validator
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := v.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return v.Check()
}

func TestValidator(t *testing.T) {
	data := fixture(t)
	for _, chunk := range []int{1, 3, 8, 9, 4096, len(data)} {
		if err := validate(data, chunk); err != nil {
			t.Fatalf("intact file in %d-byte writes: %v", chunk, err)
		}
	}
	var v Validator
	v.Write(data)
	if v.Version() != 10 || v.Size() != int64(len(data)) {
		t.Errorf("version %d size %d", v.Version(), v.Size())
	}

	for n := range len(data) {
		if err := validate(data[:n], 4096); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x20
		if err := validate(bad, 4096); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
		}
	}

	noSum := bytes.Clone(data)
	clear(noSum[len(noSum)-8:])
	if err := validate(noSum, 4096); !errors.Is(err, ErrNoChecksum) {
		t.Errorf("zero checksum: %v, want ErrNoChecksum", err)
	}
	// A wrong header fails the first write: nothing more is taken.
	var w Validator
	if _, err := w.Write([]byte("-ERR no")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("error reply: %v", err)
	}
	if err := validate([]byte("REDIS0004\xff"), 1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("version 4: %v", err)
	}
}

func TestReader(t *testing.T) {
	data := fixture(t)
	rd, err := NewReader(iotest.HalfReader(bytes.NewReader(data)), true)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	var expires, functions int
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == Function {
			functions++
			if !bytes.Contains(e.Code, []byte("name=mylib")) {
				t.Errorf("library code %q", e.Code)
			}
			continue
		}
		name := string(e.Key)
		if e.DB == 3 {
			name = "3:" + name
		}
		types[name] = TypeName(e.Type)
		if e.ExpireMs != 0 {
			expires++
		}
		if want, ok := fixtureDumps[name]; ok {
			if got := hex.EncodeToString(DumpPayload(e.Type, e.Value, rd.Version())); got != want {
				t.Errorf("%s: payload\n%s\nwant DUMP's\n%s", name, got, want)
			}
		}
	}
	want := map[string]string{
		"s1": "string", "int": "string", "neg": "string", "big": "string", "ttl1": "string",
		"list1": "list", "biglist": "list", "set1": "set", "set2": "set", "bigset": "set",
		"z1": "zset", "bigz": "zset", "h1": "hash", "bighash": "hash", "st": "stream", "3:other": "string",
	}
	if len(types) != len(want) {
		t.Errorf("keys %v, want %v", types, want)
	}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("%s: type %q, want %q", k, types[k], v)
		}
	}
	if expires != 2 || functions != 1 {
		t.Errorf("%d expires, %d functions; want 2 and 1", expires, functions)
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

func TestScan(t *testing.T) {
	data := fixture(t)
	s, err := Scan(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 10 || s.Keys[0] != 15 || s.Keys[3] != 1 || s.Expires[0] != 1 || s.Expires[3] != 1 ||
		s.Functions != 1 || s.MaxDB != 3 || s.Unreadable != nil || s.NoChecksum {
		t.Errorf("summary %+v", s)
	}

	for _, n := range []int{0, 5, 9, 10, len(data) / 2, len(data) - 9, len(data) - 1} {
		if _, err := Scan(bytes.NewReader(data[:n])); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, err := Scan(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := Scan(bytes.NewReader(append(bytes.Clone(data), 0))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: %v", err)
	}

	// A value type from the future: the walk stops, the checksum still
	// decides, over the whole file.
	future := unknownType(t, data)
	s, err = Scan(bytes.NewReader(future))
	if err != nil || !errors.Is(s.Unreadable, ErrUnsupported) {
		t.Errorf("unknown type: %v, summary %+v", err, s)
	}
	future[len(future)-20] ^= 1
	if _, err := Scan(bytes.NewReader(future)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown type, then a flipped byte: %v", err)
	}
}

// unknownType rewrites the fixture's first key's type byte to 200 and fixes
// up the checksum.
func unknownType(t *testing.T, data []byte) []byte {
	t.Helper()
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte("\x00\x02s1")) // type string, key "s1"
	if i < 0 {
		i = bytes.Index(out, []byte("\x00\x05hello"))
	}
	if i < 0 {
		t.Fatal("no string key found in the fixture")
	}
	out[i] = 200
	binary.LittleEndian.PutUint64(out[len(out)-8:], CRC64(0, out[:len(out)-8]))
	return out
}

func TestLZF(t *testing.T) {
	// "aaaa...": a literal, then back references into itself.
	in := []byte{0x00, 'a', 0xe0, 0xff, 0x00}
	out, err := lzfDecompress(in, 1+7+0xff+2)
	if err != nil || !bytes.Equal(out, bytes.Repeat([]byte("a"), 265)) {
		t.Fatalf("%v %q", err, out)
	}
	for _, bad := range [][]byte{{0x05, 'a'}, {0x20, 0x00}, {0x00, 'a', 0xe0}} {
		if _, err := lzfDecompress(bad, 10); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// FuzzScan: whatever the bytes, Scan returns (no panic, no hang, bounded
// memory), and what it accepts the streaming Validator accepts too.
func FuzzScan(f *testing.F) {
	data := fixture(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte("REDIS0010\xff\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Scan(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error that is not ErrCorrupt: %v", err)
			}
			return
		}
		if verr := validate(in, 64); verr != nil && !(s.NoChecksum && errors.Is(verr, ErrNoChecksum)) {
			t.Fatalf("Scan accepted what Validator rejects: %v", verr)
		}
	})
}

func BenchmarkValidator(b *testing.B) {
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	var v Validator
	v.Write([]byte("REDIS0010"))
	for b.Loop() {
		v.Write(buf)
	}
}

// A key whose LZF header claims 512 MiB over one compressed byte is refused
// with ErrCorrupt, without allocating what it claims.
func TestLZFClaimBoundedByInput(t *testing.T) {
	in := []byte("REDIS0011")
	in = append(in, 0x00)                         // a string key follows
	in = append(in, 0xc0|encLZF, 0x01)            // key: LZF, 1 compressed byte
	in = append(in, 0x80, 0x1f, 0xff, 0xff, 0xff) // decompresses to 512 MiB - 1
	in = append(in, 0x00, 'v', 0x00)              // the byte, and a value
	var err error
	n := readntest.Allocated(func() { _, err = Scan(bytes.NewReader(in)) })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Scan of %d bytes: %v, want ErrCorrupt", len(in), err)
	}
	if n > 1<<20 {
		t.Fatalf("Scan of %d bytes allocated %d bytes", len(in), n)
	}
	t.Logf("%d bytes: %v (allocated %d bytes)", len(in), err, n)
}
