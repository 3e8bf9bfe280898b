// Package readntest measures what a parse allocates, for tests that bound
// memory by input size.
package readntest

import "runtime"

// Allocated returns the bytes of heap that f allocated (on this and any
// other goroutine running meanwhile: call it from tests that run alone).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
