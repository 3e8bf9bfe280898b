package proc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"
)

// The child reads exactly what was given, across many pipe fills.
func TestRunWithInput(t *testing.T) {
	in := make([]byte, 5*pipeSize+12345)
	rand.New(rand.NewSource(1)).Read(in) //nolint:gosec // test data
	cmd := exec.Command("sha256sum")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := RunWithInput(cmd, bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(in)); !strings.HasPrefix(out.String(), want) {
		t.Fatalf("the child hashed %q, want %s", out.String(), want)
	}
}

// A child that stops reading early has not failed for it; its own failure
// is the error; an input that fails to read is the error of a child that
// succeeded.
func TestRunWithInputErrors(t *testing.T) {
	big := func() io.Reader { return io.LimitReader(zeros{}, 20*pipeSize) }
	if err := RunWithInput(exec.Command("head", "-c", "1"), big()); err != nil {
		t.Fatalf("a child reading one byte: %v", err)
	}
	var ee *exec.ExitError
	if err := RunWithInput(exec.Command("sh", "-c", "head -c 1 >/dev/null; exit 3"), big()); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("a child exiting 3: got %v", err)
	}
	broken := errors.New("the artifact stopped decoding")
	in := io.MultiReader(strings.NewReader("some bytes"), errReader{broken})
	var ie *InputError
	if err := RunWithInput(exec.Command("cat"), in); !errors.Is(err, broken) || !errors.As(err, &ie) {
		t.Fatalf("an input failing to read: got %v, want an InputError", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunWithInput(Command(ctx, "/bin/cat", nil), big()); err == nil {
		t.Fatal("a cancelled command succeeded")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
