//go:build !(linux || darwin)

package restore

// statfsFree cannot tell free space here: spools are not checked.
func statfsFree(string) (uint64, bool, error) { return 0, false, nil }
