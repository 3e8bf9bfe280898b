package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In the config it is written as a plain
// integer or a number with a unit: B, KB/MB/GB/TB (powers of 1000) or
// KiB/MiB/GiB/TiB (powers of 1024), e.g. "16MiB", "1.5GiB", "100MB".
type ByteSize int64

// Byte size units.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1e3
	MB  ByteSize = 1e6
	GB  ByteSize = 1e9
	TB  ByteSize = 1e12
)

type byteUnit struct {
	name string
	size ByteSize
}

// byteUnits lists units from largest to smallest; String prefers the binary
// unit when both divide a value exactly.
func byteUnits() [9]byteUnit {
	return [...]byteUnit{
		{"TiB", TiB}, {"TB", TB},
		{"GiB", GiB}, {"GB", GB},
		{"MiB", MiB}, {"MB", MB},
		{"KiB", KiB}, {"KB", KB},
		{"B", B},
	}
}

// ParseByteSize parses a size such as "1024", "512MiB", "16MB" or "1.5GiB".
// Units are matched case-insensitively; a space between number and unit is
// allowed. The result must be a whole, non-negative number of bytes.
func ParseByteSize(s string) (ByteSize, error) {
	in := strings.TrimSpace(s)
	i := strings.IndexFunc(in, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.'
	})
	num, unit := in, ""
	if i >= 0 {
		num, unit = in[:i], strings.TrimSpace(in[i:])
	}
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. 512MiB", s)
	}
	mult := B
	if unit != "" {
		found := false
		for _, u := range byteUnits() {
			if strings.EqualFold(unit, u.name) {
				mult, found = u.size, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
		}
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > math.MaxInt64/int64(mult) {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return ByteSize(n) * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. 512MiB", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return ByteSize(v), nil
}

// String formats the size with the largest unit that divides it exactly, so
// that ParseByteSize(b.String()) == b.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	sign := ""
	n := b
	if n < 0 {
		if n == math.MinInt64 {
			return strconv.FormatInt(int64(n), 10) + "B"
		}
		sign, n = "-", -n
	}
	for _, u := range byteUnits() {
		if n%u.size == 0 {
			return sign + strconv.FormatInt(int64(n/u.size), 10) + u.name
		}
	}
	return sign + strconv.FormatInt(int64(n), 10) + "B" // unreachable: B divides everything
}
