package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/backproof/backproof/internal/readn/readntest"
)

func replies(in []byte) *conn {
	return &conn{ctx: context.Background(), r: bufio.NewReader(bytes.NewReader(in))}
}

// A 14-byte reply that claims a 512 MiB bulk string fails as truncated
// without allocating what it claims.
func TestRESPBulkBoundedByInput(t *testing.T) {
	in := []byte("$536870912\r\nab")
	var err error
	n := readntest.Allocated(func() { _, err = replies(in).receive() })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%q: %v, want a truncated reply", in, err)
	}
	if n > 1<<20 {
		t.Fatalf("a %d-byte reply allocated %d bytes", len(in), n)
	}
	if _, err := replies([]byte("$2\r\nabXY")).receive(); err == nil || !strings.Contains(err.Error(), "CRLF") {
		t.Errorf("bulk string without CRLF: %v", err)
	}
}

// encode writes v back in RESP2.
func encode(b *bytes.Buffer, v value) {
	switch {
	case v.kind == '-':
		b.WriteString("-" + v.str + "\r\n")
	case v.null:
		b.WriteString(string(v.kind) + "-1\r\n")
	case v.kind == '+':
		b.WriteString("+" + v.str + "\r\n")
	case v.kind == ':':
		b.WriteString(":" + strconv.FormatInt(v.n, 10) + "\r\n")
	case v.kind == '$':
		b.WriteString("$" + strconv.Itoa(len(v.str)) + "\r\n" + v.str + "\r\n")
	case v.kind == '*':
		b.WriteString("*" + strconv.Itoa(len(v.array)) + "\r\n")
		for _, e := range v.array {
			encode(b, e)
		}
	}
}

// FuzzRESP: whatever a server sends, replies parse without panic and in
// memory bounded by the input, and what parses reads back the same once
// written out again.
func FuzzRESP(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR unknown command\r\n", ":42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*-1\r\n",
		"*3\r\n$3\r\nSET\r\n:1\r\n*1\r\n-NOPERM x\r\n", "$536870912\r\nab", "*1048576\r\n",
		"+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := replies(in)
		for {
			v, err := c.receive()
			var se ServerError
			if errors.As(err, &se) {
				continue
			}
			if err != nil {
				return
			}
			if (v.kind == '+' || v.kind == '-') && strings.ContainsAny(v.str, "\r\n") {
				continue // a line's CR may be absent: not canonical
			}
			var b bytes.Buffer
			encode(&b, v)
			again, err := replies(b.Bytes()).receive()
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%q: read back as %+v (%v), want %+v", b.Bytes(), again, err, v)
			}
		}
	})
}
