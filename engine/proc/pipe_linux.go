package proc

import (
	"os"

	"golang.org/x/sys/unix"
)

func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { //nolint:errcheck // best effort: a smaller pipe only costs wake-ups
		unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) //nolint:errcheck
	})
}
