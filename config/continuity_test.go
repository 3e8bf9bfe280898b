package config

import (
	"slices"
	"strings"
	"testing"
)

func TestContinuityPolicy(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       ContinuityPolicy
	}{
		{"defaults", okTail, ContinuityPolicy{Enabled: true, MaxDrop: 50, MinRows: 1000}},
		{"redis defaults", strings.Replace(okTail, "engine: postgres", "engine: redis", 1), ContinuityPolicy{Enabled: true, MaxDrop: 90, MinRows: 10000}},
		{"set", okTail + "    verify: {continuity: {max_drop: 20%, min_rows: 0, ignore: [sessions, \"cache.*\"]}}\n",
			ContinuityPolicy{Enabled: true, MaxDrop: 20, MinRows: 0, Ignore: []string{"sessions", "cache.*"}}},
		{"disabled", okTail + "    verify: {continuity: {enabled: false}}\n", ContinuityPolicy{MaxDrop: 50, MinRows: 1000}},
		{"partial on redis", strings.Replace(okTail, "engine: postgres", "engine: redis", 1) + "    verify: {continuity: {min_rows: 5}}\n",
			ContinuityPolicy{Enabled: true, MaxDrop: 90, MinRows: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.yaml, nil).Targets["db"].ContinuityPolicy()
			if got.Enabled != tc.want.Enabled || got.MaxDrop != tc.want.MaxDrop || got.MinRows != tc.want.MinRows || !slices.Equal(got.Ignore, tc.want.Ignore) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestContinuityInvalid(t *testing.T) {
	for in, want := range map[string]string{
		"{max_drop: 500}":  ":9: targets.db.verify.continuity.max_drop: want a percentage of the baseline's rows, e.g. 50%",
		"{max_drop: 150%}": `targets.db.verify.continuity.max_drop: invalid tolerance "150%"`,
		"{min_rows: -1}":   "targets.db.verify.continuity.min_rows: must not be negative",
		"{ignore: ['[a']}": "targets.db.verify.continuity.ignore[0]: invalid pattern",
		"{colour: blue}":   "targets.db.verify.continuity.colour",
		"{enabled: maybe}": "targets.db.verify.continuity.enabled",
	} {
		_, err := Parse([]byte(okTail+"    verify:\n      continuity: "+in+"\n"), testFile, envFunc(nil))
		if lines := problemLines(t, err); len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("%s: %v, want %q", in, lines, want)
		}
	}
}
