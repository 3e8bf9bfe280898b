package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Tolerance is how far a count observed in a restored copy may be from the
// count recorded at dump time: a number, or a percentage of the recorded
// count ("0.5%"). The zero Tolerance allows no difference.
type Tolerance struct {
	N       int64
	Percent float64
}

// ParseTolerance parses "100" or "0.5%".
func ParseTolerance(s string) (Tolerance, error) {
	in := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(in, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
			return Tolerance{}, fmt.Errorf("invalid tolerance %q: want a percentage from 0%% to 100%%", s)
		}
		return Tolerance{Percent: f}, nil
	}
	n, err := strconv.ParseInt(in, 10, 64)
	if err != nil || n < 0 {
		return Tolerance{}, fmt.Errorf("invalid tolerance %q: want a count (e.g. 100) or a percentage (e.g. 0.5%%)", s)
	}
	return Tolerance{N: n}, nil
}

// Of is the difference allowed from a recorded count.
func (t Tolerance) Of(recorded int64) int64 {
	if t.Percent > 0 {
		return int64(math.Floor(float64(recorded) * t.Percent / 100))
	}
	return t.N
}

func (t Tolerance) String() string {
	if t.Percent > 0 {
		return strconv.FormatFloat(t.Percent, 'g', -1, 64) + "%"
	}
	return strconv.FormatInt(t.N, 10)
}
