//go:build linux || darwin

package restore

import "syscall"

// statfsFree is the space an unprivileged process may still write under dir.
func statfsFree(dir string) (uint64, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil //nolint:gosec,unconvert // sizes differ by OS
}
