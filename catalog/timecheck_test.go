package catalog

import (
	"strings"
	"testing"
	"time"
)

func TestTimeProblem(t *testing.T) {
	now := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	backup := func(id time.Time, start, end time.Duration) Backup {
		b := Backup{ID: NewID(id)}
		b.Summary = &Summary{Start: id.Add(start), End: id.Add(end)}
		return b
	}
	for _, tc := range []struct {
		name string
		b    Backup
		want string
	}{
		{"ordinary", backup(now.Add(-time.Hour), 300*time.Millisecond, time.Minute), ""},
		{"writer clock slightly ahead", backup(now.Add(4*time.Minute), 0, 0), ""},
		{"in the future", backup(now.Add(6*time.Minute), 0, 0), "ahead of this machine's clock"},
		{"far future, no manifest", Backup{ID: "99991231T235959Z-aaaaaaaa"}, "ahead of this machine's clock"},
		{"replayed under a newer id", backup(now.Add(-time.Hour), -24*time.Hour, -24*time.Hour+time.Minute), "its id says"},
		{"ends before it starts", backup(now.Add(-time.Hour), 0, -time.Second), "before it started"},
		{"ends in the future", backup(now.Add(-time.Hour), 0, 2*time.Hour), "ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TimeProblem(tc.b, now)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("TimeProblem = %q, want %q", got, tc.want)
			}
		})
	}
}
