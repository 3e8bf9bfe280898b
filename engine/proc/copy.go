package proc

import (
	"io"
	"os"
)

// copyBuffer is what CopyOutput reads from a child's pipe at a time.
const copyBuffer = 1 << 20

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

// CopyOutput copies a child's output to w in reads of up to 1 MiB (io.Copy
// takes 32 KiB at a time from a pipe).
func CopyOutput(w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(onlyWriter{w}, onlyReader{r}, make([]byte, copyBuffer))
}

// onlyReader and onlyWriter hide WriterTo and ReaderFrom, which would
// bypass the buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
