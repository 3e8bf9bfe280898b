package local

import (
	"bufio"
	"io"
	"os"
)

// writeBuffer batches a stream of small writes (compressed blocks of tens of
// KiB) into few large ones.
const writeBuffer = 1 << 20

// writebackEvery is how much Put writes before it asks the kernel to start
// writing back what it has, so that the final fsync finds little left to do.
const writebackEvery = 8 << 20

// copyToFile copies r into f through a 1 MiB buffer, starting writeback as
// it goes (startWriteback).
func copyToFile(f *os.File, r io.Reader) error {
	wb := &writeback{f: f}
	bw := bufio.NewWriterSize(wb, writeBuffer)
	if _, err := io.CopyBuffer(bw, struct{ io.Reader }{r}, make([]byte, writeBuffer)); err != nil {
		return err
	}
	return bw.Flush()
}

// writeback writes to f and starts writeback every writebackEvery bytes.
type writeback struct {
	f       *os.File
	off     int64 // bytes written
	started int64 // bytes handed to writeback
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackEvery {
		startWriteback(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	return n, err
}
