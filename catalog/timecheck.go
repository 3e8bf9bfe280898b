package catalog

import (
	"fmt"
	"time"
)

// MaxClockSkew is how far ahead of this machine's clock a backup may be
// dated: a writer whose clock runs slightly ahead.
const MaxClockSkew = 5 * time.Minute

// TimeProblem says why b's dates cannot be believed, or "" when they can: its
// id lies in the future beyond MaxClockSkew, or its manifest's times disagree
// with its id. Such a backup (planted, or written by a machine with a wrong
// clock) is never "latest" for restore or verify and counts for no retention
// rule, or one forged far-future id would win forever.
func TimeProblem(b Backup, now time.Time) string {
	t, err := IDTime(b.ID)
	if err != nil {
		return err.Error()
	}
	limit := now.Add(MaxClockSkew)
	if t.After(limit) {
		return fmt.Sprintf("dated %s, %s ahead of this machine's clock", t.Format(time.RFC3339), t.Sub(now).Round(time.Second))
	}
	m := b.Summary
	if m == nil {
		return ""
	}
	switch start := m.Start.UTC().Truncate(time.Second); {
	case !start.Equal(t):
		return fmt.Sprintf("manifest says it started %s, its id says %s", m.Start.UTC().Format(time.RFC3339), t.Format(time.RFC3339))
	case m.End.Before(m.Start):
		return fmt.Sprintf("manifest says it ended (%s) before it started", m.End.UTC().Format(time.RFC3339))
	case m.End.After(limit):
		return fmt.Sprintf("manifest says it ended %s, %s ahead of this machine's clock", m.End.UTC().Format(time.RFC3339), m.End.Sub(now).Round(time.Second))
	}
	return ""
}
