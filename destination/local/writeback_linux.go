package local

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing the range to disk without
// waiting for it (sync_file_range(2) SYNC_FILE_RANGE_WRITE). It is a hint:
// durability still comes from the fsync at the end.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { //nolint:errcheck // a hint
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE) //nolint:errcheck,gosec
	})
}
