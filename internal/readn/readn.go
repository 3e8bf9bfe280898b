// Package readn reads byte counts that come from untrusted input: a length
// field in a file or a reply. Memory grows with the bytes that arrive, never
// with the length claimed, so a few hostile bytes cannot make the process
// allocate hundreds of megabytes.
package readn

import (
	"io"
	"slices"
)

// first is the capacity a read starts with.
const first = 64 << 10

// Append reads exactly n bytes from r and appends them to dst. dst grows at
// most by doubling what has already arrived, from 64 KiB. When r ends early
// it returns what arrived with io.ErrUnexpectedEOF (io.EOF if nothing did).
func Append(dst []byte, r io.Reader, n int) ([]byte, error) {
	start := len(dst)
	for n > 0 {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(n, max(len(dst)-start, first)))
		}
		chunk := min(n, cap(dst)-len(dst))
		m, err := io.ReadFull(r, dst[len(dst):len(dst)+chunk])
		dst = dst[:len(dst)+m]
		n -= m
		if err != nil {
			if err == io.EOF && len(dst) > start {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
	}
	return dst, nil
}
