package config

import (
	"fmt"
	"time"
)

// Warnings lists settings that are valid but will not do what they seem to.
// Today: a retention policy that would delete backups before the object lock
// of one of the target's destinations ends (prune then keeps them until it
// does).
func (c *Config) Warnings() []string {
	var out []string
	for _, tn := range c.TargetNames() {
		t := c.Targets[tn]
		if t.Retention == nil {
			continue
		}
		horizon, rule := t.Retention.Horizon(t.Schedule)
		for _, dn := range t.Destinations {
			d := c.Destinations[dn]
			if d == nil || d.ObjectLock == nil || horizon == 0 {
				continue
			}
			lock := time.Duration(d.ObjectLock.Days) * 24 * time.Hour
			if horizon < lock {
				out = append(out, fmt.Sprintf(
					"targets.%s.retention: keeps backups about %s (%s), but destination %s locks every object for %d days: prune keeps each backup there until its lock ends",
					tn, days(horizon), rule, dn, d.ObjectLock.Days))
			}
		}
	}
	return out
}

// Horizon estimates how long the policy keeps a backup made on schedule: the
// longest span any one rule covers, and that rule. keep_last counts in
// schedule intervals; without a schedule it adds nothing. Zero means unknown.
func (r Retention) Horizon(schedule string) (time.Duration, string) {
	const day = 24 * time.Hour
	var best time.Duration
	var rule string
	consider := func(d time.Duration, what string) {
		if d > best {
			best, rule = d, what
		}
	}
	consider(r.KeepWithin, fmt.Sprintf("keep_within: %s", r.KeepWithin))
	consider(time.Duration(r.KeepHourly)*time.Hour, fmt.Sprintf("keep_hourly: %d", r.KeepHourly))
	consider(time.Duration(r.KeepDaily)*day, fmt.Sprintf("keep_daily: %d", r.KeepDaily))
	consider(time.Duration(r.KeepWeekly)*7*day, fmt.Sprintf("keep_weekly: %d", r.KeepWeekly))
	consider(time.Duration(r.KeepMonthly)*30*day, fmt.Sprintf("keep_monthly: %d", r.KeepMonthly))
	consider(time.Duration(r.KeepYearly)*365*day, fmt.Sprintf("keep_yearly: %d", r.KeepYearly))
	if r.KeepLast > 0 && schedule != "" {
		if s, err := ParseSchedule(schedule); err == nil {
			// keep_last lasts at least that many of the shortest gap
			// between firings (over a year, or a thousand firings).
			start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
			prev, gap := s.Next(start), time.Duration(0)
			for i, next := 0, s.Next(prev); i < 1000 && !next.IsZero() && next.Before(start.Add(366*day)); i, prev, next = i+1, next, s.Next(next) {
				if g := next.Sub(prev); gap == 0 || g < gap {
					gap = g
				}
			}
			consider(time.Duration(r.KeepLast)*gap, fmt.Sprintf("keep_last: %d at schedule %q", r.KeepLast, schedule))
		}
	}
	return best, rule
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Hour).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}
