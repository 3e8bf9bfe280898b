package verify

import "testing"

// Parallel restore jobs start at two sandbox CPUs, one per CPU up to 8.
func TestJobs(t *testing.T) {
	for cpus, want := range map[float64]int{0.5: 1, 1: 1, 1.5: 1, 1.99: 1, 2: 2, 2.5: 3, 4: 4, 9: 8, 16: 8} {
		if got := (&Verifier{CPUs: cpus}).jobs(); got != want {
			t.Errorf("jobs() with %v CPUs = %d, want %d", cpus, got, want)
		}
	}
}
