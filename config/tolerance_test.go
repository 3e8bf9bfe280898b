package config

import (
	"strings"
	"testing"
)

func TestParseTolerance(t *testing.T) {
	for in, want := range map[string]Tolerance{
		"0": {}, "100": {N: 100}, " 7 ": {N: 7}, "0.5%": {Percent: 0.5}, "100%": {Percent: 100}, "2 %": {Percent: 2},
	} {
		got, err := ParseTolerance(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "x", "101%", "-1%", "NaN%", "%"} {
		if _, err := ParseTolerance(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	if got := (Tolerance{Percent: 1}).Of(1999); got != 19 {
		t.Errorf("1%% of 1999 = %d", got)
	}
	if got := (Tolerance{N: 5}).Of(1e9); got != 5 {
		t.Errorf("5 of 1e9 = %d", got)
	}
}

func TestKeyTolerance(t *testing.T) {
	redis := strings.Replace(okTail, "engine: postgres", "engine: redis", 1) + "    verify: {key_tolerance: 2%}\n"
	c := mustParse(t, redis, nil)
	if got := c.Targets["db"].Verify.KeyTolerance; got != (Tolerance{Percent: 2}) {
		t.Errorf("key_tolerance %+v", got)
	}

	_, err := Parse([]byte(okTail+"    verify: {key_tolerance: 10}\n"), testFile, envFunc(nil))
	if lines := problemLines(t, err); len(lines) != 1 || !strings.Contains(lines[0], ":8: targets.db.verify.key_tolerance: only for redis and valkey targets") {
		t.Errorf("postgres target: %v", lines)
	}
	_, err = Parse([]byte(strings.Replace(redis, "2%", "lots", 1)), testFile, envFunc(nil))
	if lines := problemLines(t, err); len(lines) != 1 || !strings.Contains(lines[0], `targets.db.verify.key_tolerance: invalid tolerance "lots"`) {
		t.Errorf("bad value: %v", lines)
	}
}
