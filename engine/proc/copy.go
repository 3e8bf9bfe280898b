package proc

import (
	"io"
	"os"
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
