package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "1024", want: 1024},
		{in: "0", want: 0},
		{in: "100B", want: 100},
		{in: "1KiB", want: 1024},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "16MB", want: 16_000_000},
		{in: "1KB", want: 1000},
		{in: "3GB", want: 3_000_000_000},
		{in: "1TB", want: 1_000_000_000_000},
		{in: "1.5GiB", want: 3 << 29},
		{in: "0.5KB", want: 500},
		{in: " 16 mib ", want: 16 << 20},
		{in: "8EiB", err: `unknown unit "EiB"`},
		{in: "", err: "want a number"},
		{in: "MiB", err: "want a number"},
		{in: "-1MiB", err: "want a number"},
		{in: "1.2.3MiB", err: "want a number"},
		{in: "1.5B", err: "not a whole number of bytes"},
		{in: "1e3", err: `unknown unit "e3"`},
		{in: "16M", err: `unknown unit "M"`},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "9223372036854775808", err: "too large"},
		{in: "8388608TiB", err: "too large"},
	} {
		got, err := ParseByteSize(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseByteSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("ParseByteSize(%q): %v", tt.in, err)
		case tt.err == "" && tt.want != 0 && got != tt.want:
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tt := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{16 * MiB, "16MiB"},
		{16 * MB, "16MB"},
		{3 * GiB / 2, "1536MiB"},
		{GiB, "1GiB"},
		{5 * TiB, "5TiB"},
		{-2 * KiB, "-2KiB"},
		{math.MaxInt64, "9223372036854775807B"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in >= 0 {
			if back, err := ParseByteSize(tt.in.String()); err != nil || back != tt.in {
				t.Errorf("round trip %d: %d, %v", int64(tt.in), back, err)
			}
		}
	}
}

func TestParseSchedule(t *testing.T) {
	ref := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		spec string
		next time.Time // zero: only check that it parses
		err  string
	}{
		{spec: "0 2 * * *", next: time.Date(2026, 11, 22, 2, 0, 0, 0, time.Local)},
		{spec: "CRON_TZ=UTC 0 2 * * *", next: time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)},
		{spec: "TZ=UTC 30 0 2 * * *", next: time.Date(2026, 11, 22, 2, 0, 30, 0, time.UTC)},
		{spec: "CRON_TZ=America/New_York 0 2 * * *", next: time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)},
		{spec: "@daily"},
		{spec: "@every 6h", next: ref.Add(6 * time.Hour)},
		{spec: "  0 2 * * MON-FRI  "},
		{spec: "", err: "empty schedule"},
		{spec: "0 2 * *", err: "expected 5 to 6 fields"},
		{spec: "0 0 2 * * * *", err: "expected 5 to 6 fields"},
		{spec: "61 * * * *", err: "above maximum"},
		{spec: "@reboot", err: "unrecognized descriptor"},
		{spec: "CRON_TZ=UTC", err: "time zone prefix without a schedule"},
		{spec: "TZ=Nowhere/Land 0 2 * * *", err: "bad location"},
		{spec: "0 0 30 2 *", err: "never fires"},
	} {
		s, err := ParseSchedule(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSchedule(%q): %v, want error containing %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tt.spec, err)
			continue
		}
		if !tt.next.IsZero() {
			from := ref
			if tt.next.Location() == time.Local {
				from = time.Date(2026, 11, 22, 1, 0, 0, 0, time.Local)
			}
			if got := s.Next(from); !got.Equal(tt.next) {
				t.Errorf("ParseSchedule(%q).Next(%v) = %v, want %v", tt.spec, from, got, tt.next)
			}
		}
	}
}

func TestExpect(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Expect
		str  string
		err  bool
	}{
		{in: "true", want: Expect{Op: "true"}, str: "true"},
		{in: " TRUE ", want: Expect{Op: "true"}, str: "true"},
		{in: "> 0", want: Expect{Op: ">", Value: 0}, str: "> 0"},
		{in: ">=10", want: Expect{Op: ">=", Value: 10}, str: ">= 10"},
		{in: "= 3.5", want: Expect{Op: "=", Value: 3.5}, str: "= 3.5"},
		{in: "==3.5", want: Expect{Op: "=", Value: 3.5}, str: "= 3.5"},
		{in: "!= -1", want: Expect{Op: "!=", Value: -1}, str: "!= -1"},
		{in: "<1e6", want: Expect{Op: "<", Value: 1e6}, str: "< 1e+06"},
		{in: "<= 0.25", want: Expect{Op: "<=", Value: 0.25}, str: "<= 0.25"},
		{in: "", err: true},
		{in: "false", err: true},
		{in: "0", err: true},
		{in: ">", err: true},
		{in: "> x", err: true},
		{in: "> NaN", err: true},
		{in: "> Inf", err: true},
		{in: "=> 1", err: true},
		{in: "> 1 2", err: true},
	} {
		got, err := ParseExpect(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseExpect(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseExpect(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}
}

func TestExpectHolds(t *testing.T) {
	for _, tt := range []struct {
		expect, observed string
		want, err        bool
	}{
		{"true", "t", true, false},
		{"true", "TRUE", true, false},
		{"true", " True\n", true, false},
		{"true", "1", true, false},
		{"true", "f", false, false},
		{"true", "0", false, false},
		{"true", "", false, false},
		{"true", "yes", false, false},
		{"> 0", "42", true, false},
		{"> 0", "0", false, false},
		{"> 0", " 7 ", true, false},
		{">= 10", "10", true, false},
		{">= 10", "9.99", false, false},
		{"< 5", "4", true, false},
		{"<= 5", "5.0", true, false},
		{"= 3.5", "3.50", true, false},
		{"= 3.5", "3.6", false, false},
		{"!= 0", "0", false, false},
		{"!= 0", "1e3", true, false},
		{"> 0", "", false, true},
		{"> 0", "many", false, true},
		{"> 0", "NaN", false, true},
		{"> 0", "t", false, true},
	} {
		e, err := ParseExpect(tt.expect)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Holds(tt.observed)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%q.Holds(%q) = %v, %v; want %v, error %v", tt.expect, tt.observed, got, err, tt.want, tt.err)
		}
	}
	if _, err := (Expect{Op: "~"}).Holds("1"); err == nil {
		t.Error("unknown operator holds")
	}
	long := strings.Repeat("x", 1000)
	if _, err := (Expect{Op: ">"}).Holds(long); err == nil || len(err.Error()) > 120 {
		t.Errorf("error for a long value: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "26h", want: 26 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "14d", want: 14 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "0", want: 0},
		{in: "-5m", want: -5 * time.Minute},
		{in: "1.5d", err: true},
		{in: "d", err: true},
		{in: "-1d", err: true},
		{in: "1d-1h", err: true},
		{in: "1w", err: true},
		{in: "10", err: true},
		{in: "106752d", err: true},
		{in: "", err: true},
	} {
		got, err := parseDuration(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
