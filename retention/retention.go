// Package retention decides which backups prune keeps. Plan is a pure
// function of (backups, now, policy), in the manner of restic's forget:
//
//   - keep_last N keeps the N newest backups;
//   - keep_hourly/daily/weekly/monthly/yearly N keeps the newest backup of
//     each of the N newest hours, days, ISO weeks, months or years (UTC) that
//     have a backup: a bucket without one does not use up the count;
//   - keep_within D keeps every backup created within D of the newest one.
//
// Every rule counts from the newest backup, not from now, so a plan does not
// change while no new backup arrives: a month of failed backups deletes
// nothing more than the last successful one would have. On top of the rules
// the newest committed backup and the newest backup that passed verification
// are always kept, and a backup with an unusable manifest, or dated in the
// future, is never deleted and counts for no rule.
package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backproof/backproof/config"
)

// MaxClockSkew is how far in the future a backup may lie before Plan sets it
// aside: further than that, this machine's clock or the writer's is wrong (or
// the backup was planted), and rules counting from it as the "newest" could
// delete good ones.
const MaxClockSkew = 5 * time.Minute

// Backup is one backup on one destination.
type Backup struct {
	ID   string
	Time time.Time // creation time, from the id
	// Verified: the backup's newest verification with a verdict passed.
	Verified bool
	// Invalid: a manifest exists but cannot be used. Such a backup is kept,
	// for a person to look at, and counts for no rule.
	Invalid bool
	// Suspect says why the backup's dates cannot be believed; such a
	// backup is kept and counts for no rule, like an invalid one.
	Suspect string
}

// Decision is what the plan does with one backup.
type Decision struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"created"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"` // why it is kept
}

// Reasons of the safety rules.
const (
	ReasonNewestCommitted = "newest committed"
	ReasonNewestVerified  = "newest verified"
	ReasonInvalid         = "invalid manifest, never pruned"
	ReasonSuspect         = "dates cannot be believed, never pruned"
)

// Plan decides, newest first, which backups p keeps. It fails, planning
// nothing, when p keeps nothing. A backup more than MaxClockSkew after now
// is set aside like an invalid one: kept, and counted by no rule.
func Plan(backups []Backup, now time.Time, p config.Retention) ([]Decision, error) {
	if !keepsSomething(p) {
		return nil, errors.New("retention keeps nothing: set at least one keep_* rule")
	}
	sorted := slices.Clone(backups)
	slices.SortStableFunc(sorted, func(a, b Backup) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	out := make([]Decision, len(sorted))
	var valid []int // indexes into sorted, newest first
	for i, b := range sorted {
		out[i] = Decision{ID: b.ID, Time: b.Time}
		if b.Invalid {
			out[i].keep(ReasonInvalid)
			continue
		}
		if b.Suspect == "" && b.Time.After(now.Add(MaxClockSkew)) {
			b.Suspect = fmt.Sprintf("%s ahead of this machine's clock", b.Time.Sub(now).Round(time.Second))
		}
		if b.Suspect != "" {
			out[i].keep(ReasonSuspect + ": " + b.Suspect)
			continue
		}
		valid = append(valid, i)
	}

	for n, i := range valid {
		if n >= p.KeepLast {
			break
		}
		out[i].keep(fmt.Sprintf("last %d", n+1))
	}
	for _, r := range []struct {
		name   string
		n      int
		bucket func(time.Time) string
	}{
		{"hourly", p.KeepHourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{"daily", p.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.KeepYearly, func(t time.Time) string { return t.Format("2006") }},
	} {
		left, last := r.n, ""
		for _, i := range valid {
			if left == 0 {
				break
			}
			// Newest first: the first backup seen in a bucket is its newest.
			if b := r.bucket(sorted[i].Time.UTC()); b != last {
				out[i].keep(r.name + " " + b)
				last = b
				left--
			}
		}
	}
	if p.KeepWithin > 0 && len(valid) > 0 {
		newest := sorted[valid[0]].Time
		reason := "within " + FormatDuration(p.KeepWithin)
		for _, i := range valid {
			if newest.Sub(sorted[i].Time) > p.KeepWithin {
				break
			}
			out[i].keep(reason)
		}
	}
	if len(valid) > 0 {
		out[valid[0]].keep(ReasonNewestCommitted)
	}
	for _, i := range valid {
		if sorted[i].Verified {
			out[i].keep(ReasonNewestVerified)
			break
		}
	}
	return out, nil
}

func (d *Decision) keep(reason string) {
	d.Keep = true
	d.Reasons = append(d.Reasons, reason)
}

func keepsSomething(p config.Retention) bool {
	return p.KeepLast > 0 || p.KeepHourly > 0 || p.KeepDaily > 0 || p.KeepWeekly > 0 ||
		p.KeepMonthly > 0 || p.KeepYearly > 0 || p.KeepWithin > 0
}

// FormatDuration writes d as the config does: "14d", "1d12h", "90m".
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	days, rest := d/day, d%day
	var s string
	if days > 0 {
		s = fmt.Sprintf("%dd", days)
		if rest == 0 {
			return s
		}
	}
	r := rest.String()
	if strings.HasSuffix(r, "m0s") {
		r = strings.TrimSuffix(r, "0s")
	}
	if strings.HasSuffix(r, "h0m") {
		r = strings.TrimSuffix(r, "0m")
	}
	return s + r
}
