package readn

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/backproof/backproof/internal/readn/readntest"
)

func TestAppend(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 30000)
	got, err := Append([]byte("head"), bytes.NewReader(data), len(data))
	if err != nil || !bytes.Equal(got, append([]byte("head"), data...)) {
		t.Fatalf("Append: %v, %d bytes", err, len(got))
	}
	if _, err := Append(nil, strings.NewReader(""), 5); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
	if got, err := Append(nil, strings.NewReader("abc"), 5); err != io.ErrUnexpectedEOF || string(got) != "abc" {
		t.Errorf("short input: %q %v, want abc and io.ErrUnexpectedEOF", got, err)
	}
}

// A claimed length of 1 GiB over 3 bytes of input allocates 64 KiB, not 1 GiB.
func TestAppendBoundedByInput(t *testing.T) {
	var err error
	n := readntest.Allocated(func() { _, err = Append(nil, strings.NewReader("abc"), 1<<30) })
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v", err)
	}
	if n > 1<<20 {
		t.Fatalf("reading 3 bytes of a claimed 1 GiB allocated %d bytes", n)
	}
}
