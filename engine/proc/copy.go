package proc

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// pipeSize is what GrowPipe asks the kernel for: the unprivileged maximum
// (fs.pipe-max-size) by default.
const pipeSize = 1 << 20

// GrowPipe enlarges the kernel buffer of a pipe (Linux; elsewhere and on
// error it does nothing): a child that writes in small pieces then fills
// it while the reader works, and the reader takes it in few, large reads
// instead of one wake-up per write. Call it on a cmd.StdoutPipe before
// cmd.Start.
func GrowPipe(r io.Reader) {
	if f, ok := r.(*os.File); ok {
		growPipe(f)
	}
}

// RunWithInput runs cmd with in on its standard input through a pipe of
// pipeSize, written a pipe's worth at a time: os/exec's own copy writes 32
// KiB at a time into a 64 KiB pipe, waking the child for each. The error is
// cmd's, or else an *InputError (a child that exits before reading all of in
// has not failed for it).
func RunWithInput(cmd *exec.Cmd, in io.Reader) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	growPipe(pw)
	cmd.Stdin = pr
	err = cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		return err
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(onlyWriter{pw}, onlyReader{in}, make([]byte, pipeSize))
		pw.Close()
		copied <- err
	}()
	err = cmd.Wait()
	pw.Close() // a copy still writing stops at once
	cerr := <-copied
	if err != nil {
		return err
	}
	if cerr != nil && !errors.Is(cerr, syscall.EPIPE) && !errors.Is(cerr, os.ErrClosed) {
		return &InputError{cerr}
	}
	return nil
}

// InputError means the child succeeded, but its input failed to read: it
// had what it needed before the failure, or took a short input for whole.
type InputError struct{ Err error }

func (e *InputError) Error() string {
	return "the input failed after the program succeeded: " + e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so that CopyBuffer
// uses its buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
