package retention

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func id(t time.Time) string { return t.UTC().Format("20060102T150405Z") + "-test" }

// series returns a backup every step from first up to and including last.
func series(first, last time.Time, step time.Duration) []Backup {
	var bs []Backup
	for t := first; !t.After(last); t = t.Add(step) {
		bs = append(bs, Backup{ID: id(t), Time: t})
	}
	return bs
}

func without(bs []Backup, from, to time.Time) []Backup {
	return slices.DeleteFunc(bs, func(b Backup) bool { return !b.Time.Before(from) && !b.Time.After(to) })
}

func verifyAll(bs []Backup, except func(Backup) bool) []Backup {
	for i := range bs {
		bs[i].Verified = !except(bs[i])
	}
	return bs
}

func TestGolden(t *testing.T) {
	year := series(date("2026-01-01T02:00:00Z"), date("2026-12-31T02:00:00Z"), 24*time.Hour)
	hourly := series(date("2026-01-01T00:00:00Z"), date("2026-12-31T23:00:00Z"), time.Hour)
	cases := []struct {
		name    string
		backups []Backup
		now     time.Time
		policy  config.Retention
	}{{
		// The example config's policy over a year of nightly backups, the
		// last two not verified yet.
		name: "daily-year",
		backups: verifyAll(slices.Clone(year), func(b Backup) bool {
			return b.Time.After(date("2026-12-29T12:00:00Z"))
		}),
		now:    date("2026-12-31T02:30:00Z"),
		policy: config.Retention{KeepLast: 7, KeepDaily: 14, KeepWeekly: 8, KeepMonthly: 12},
	}, {
		// A year of hourly backups; one a day (03:00) gets verified.
		name: "hourly-year",
		backups: verifyAll(slices.Clone(hourly), func(b Backup) bool {
			return b.Time.Hour() != 3
		}),
		now:    date("2027-01-01T00:10:00Z"),
		policy: config.Retention{KeepHourly: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 2},
	}, {
		// Three weeks of outage in March and none in the last ten days:
		// keep_within counts from the newest backup, not from now.
		name: "daily-outages-within",
		backups: without(without(slices.Clone(year),
			date("2026-03-01T00:00:00Z"), date("2026-03-21T23:00:00Z")),
			date("2026-12-22T00:00:00Z"), date("2026-12-31T23:00:00Z")),
		now:    date("2026-12-31T02:30:00Z"),
		policy: config.Retention{KeepWithin: 14 * 24 * time.Hour, KeepWeekly: 4, KeepMonthly: 3},
	}, {
		// The last ten backups were committed but failed verification:
		// keep_last 3 alone would delete the last good one.
		name: "verification-failing-streak",
		backups: verifyAll(series(date("2026-05-01T02:00:00Z"), date("2026-06-29T02:00:00Z"), 24*time.Hour),
			func(b Backup) bool { return b.Time.After(date("2026-06-19T12:00:00Z")) }),
		now:    date("2026-06-29T03:00:00Z"),
		policy: config.Retention{KeepLast: 3},
	}, {
		name:    "monthly-years",
		backups: monthly(date("2020-01-15T02:00:00Z"), 84),
		now:     date("2026-12-20T00:00:00Z"),
		policy:  config.Retention{KeepMonthly: 3, KeepYearly: 5},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Plan(tc.backups, tc.now, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			got := render(tc.policy, tc.now, plan)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./retention -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s (rerun with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

func monthly(first time.Time, n int) []Backup {
	var bs []Backup
	for i := range n {
		t := first.AddDate(0, i, 0)
		bs = append(bs, Backup{ID: id(t), Time: t, Verified: true})
	}
	return bs
}

// render writes a plan with every kept backup on its own line and each run
// of deleted ones on one line.
func render(p config.Retention, now time.Time, plan []Decision) string {
	var b strings.Builder
	kept := 0
	for _, d := range plan {
		if d.Keep {
			kept++
		}
	}
	fmt.Fprintf(&b, "# policy %+v\n# now %s\n# %d backups: keep %d, delete %d\n",
		p, now.Format(time.RFC3339), len(plan), kept, len(plan)-kept)
	for i := 0; i < len(plan); {
		d := plan[i]
		if d.Keep {
			fmt.Fprintf(&b, "keep    %s  %s\n", d.ID, strings.Join(d.Reasons, ", "))
			i++
			continue
		}
		j := i
		for j+1 < len(plan) && !plan[j+1].Keep {
			j++
		}
		if j == i {
			fmt.Fprintf(&b, "delete  %s\n", d.ID)
		} else {
			fmt.Fprintf(&b, "delete  %s .. %s (%d)\n", d.ID, plan[j].ID, j-i+1)
		}
		i = j + 1
	}
	return b.String()
}

func TestFutureBackupIsSetAside(t *testing.T) {
	now := date("2026-11-22T02:00:00Z")
	bs := series(now.Add(-10*24*time.Hour), now, 24*time.Hour)
	policy := config.Retention{KeepLast: 1}

	ahead := id(now.Add(6 * time.Minute))
	skewed := append(slices.Clone(bs), Backup{ID: ahead, Time: now.Add(6 * time.Minute), Verified: true})
	plan, err := Plan(skewed, now, policy)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, d := range plan {
		if d.Keep {
			kept[d.ID] = strings.Join(d.Reasons, ", ")
		}
	}
	// The future backup is kept but counts for nothing: the newest real
	// one is still "last 1", "newest committed" and "newest verified" is
	// not taken by the future one.
	want := map[string]string{
		ahead:            ReasonSuspect + ": 6m0s ahead of this machine's clock",
		bs[len(bs)-1].ID: "last 1, newest committed",
	}
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	// Within MaxClockSkew: a writer whose clock is slightly ahead.
	slight := append(slices.Clone(bs), Backup{ID: id(now.Add(4 * time.Minute)), Time: now.Add(4 * time.Minute)})
	plan, err = Plan(slight, now, policy)
	if err != nil || !slices.Contains(plan[0].Reasons, "last 1") {
		t.Fatalf("backup 4m ahead: %v, %v", plan[0], err)
	}
}

func TestPolicyKeepingNothingIsRefused(t *testing.T) {
	bs := series(date("2026-01-01T00:00:00Z"), date("2026-01-10T00:00:00Z"), 24*time.Hour)
	if plan, err := Plan(bs, date("2026-02-01T00:00:00Z"), config.Retention{}); err == nil || plan != nil {
		t.Fatalf("empty policy: plan %v, err %v; want an error", plan, err)
	}
}

func TestInvalidBackupsAreKeptAndNotCounted(t *testing.T) {
	bs := series(date("2026-01-01T00:00:00Z"), date("2026-01-05T00:00:00Z"), 24*time.Hour)
	bs[4].Invalid = true // the newest
	bs[1].Invalid = true
	plan, err := Plan(bs, date("2026-01-06T00:00:00Z"), config.Retention{KeepLast: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range plan {
		got[d.Time.Format("01-02")] = strings.Join(d.Reasons, ", ")
	}
	want := map[string]string{
		"01-05": ReasonInvalid,
		"01-04": "last 1, " + ReasonNewestCommitted,
		"01-03": "last 2",
		"01-02": ReasonInvalid,
		"01-01": "",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reasons = %v\nwant      %v", got, want)
	}
}

// Rules count from the newest backup, so time passing without new backups
// never changes the plan.
func TestPlanDoesNotChangeWithoutNewBackups(t *testing.T) {
	bs := series(date("2026-01-01T00:00:00Z"), date("2026-06-30T23:00:00Z"), time.Hour)
	policy := config.Retention{KeepLast: 5, KeepHourly: 12, KeepDaily: 10, KeepWeekly: 6, KeepMonthly: 4, KeepYearly: 1, KeepWithin: 36 * time.Hour}
	first, err := Plan(bs, date("2026-07-01T00:00:00Z"), policy)
	if err != nil {
		t.Fatal(err)
	}
	later, err := Plan(bs, date("2027-03-01T00:00:00Z"), policy)
	if err != nil {
		t.Fatal(err)
	}
	if render(policy, time.Time{}, first) != render(policy, time.Time{}, later) {
		t.Error("the plan changed with nothing but time passing")
	}
}

// A year of nightly backups and prunes with aggressive retention, with runs
// of 10 failed backups in a row (nothing committed) and of 10 committed
// backups that fail verification: the last good backup always survives.
func TestLastGoodSurvivesFailureStreaks(t *testing.T) {
	policy := config.Retention{KeepLast: 3}
	type stored struct {
		Backup
		bad bool // verification will fail
	}
	var have []stored
	start := date("2026-01-01T02:00:00Z")
	rng := rand.New(rand.NewPCG(1, 2))
	everGood := false
	beforeStreak := ""
	for day := range 365 {
		now := start.AddDate(0, 0, day)
		streak := day % 60 // days 40..49 fail to back up, 50..59 back up unverifiable dumps
		switch {
		case streak >= 40 && streak < 50:
			// failed backup: nothing committed
		default:
			have = append(have, stored{Backup: Backup{ID: id(now), Time: now}, bad: streak >= 50 || rng.IntN(10) == 0})
		}
		// Yesterday's backup was verified overnight.
		for i := range have {
			if have[i].Time.Before(now) && !have[i].bad {
				have[i].Verified = true
				everGood = true
			}
		}
		lastGood := ""
		for _, s := range have {
			if s.Verified {
				lastGood = s.ID
			}
		}
		var bs []Backup
		for _, s := range have {
			bs = append(bs, s.Backup)
		}
		plan, err := Plan(bs, now.Add(time.Hour), policy)
		if err != nil {
			t.Fatal(err)
		}
		deleted := map[string]bool{}
		for _, d := range plan {
			if !d.Keep {
				deleted[d.ID] = true
			}
		}
		if deleted[lastGood] {
			t.Fatalf("day %d: plan deletes %s, the last good backup", day, lastGood)
		}
		have = slices.DeleteFunc(have, func(s stored) bool { return deleted[s.ID] })
		if everGood && lastGood == "" {
			t.Fatalf("day %d: no verified backup left", day)
		}
		// During the 10 failed backups prune deletes nothing at all.
		ids := fmt.Sprint(have)
		switch {
		case streak == 40:
			beforeStreak = ids
		case streak > 40 && streak < 50 && ids != beforeStreak:
			t.Fatalf("day %d: prune deleted backups during a run of failed backups:\nbefore %s\nnow    %s", day, beforeStreak, ids)
		}
	}
}

// Invariants over random backup sets and policies.
func TestPlanInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := range 2000 {
		now := date("2026-06-01T00:00:00Z")
		n := rng.IntN(60)
		var bs []Backup
		for range n {
			tm := now.Add(-time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
			bs = append(bs, Backup{ID: id(tm) + fmt.Sprint(rng.IntN(1000)), Time: tm, Verified: rng.IntN(3) == 0, Invalid: rng.IntN(15) == 0})
		}
		p := config.Retention{KeepLast: rng.IntN(4), KeepHourly: rng.IntN(3), KeepDaily: rng.IntN(5),
			KeepWeekly: rng.IntN(3), KeepMonthly: rng.IntN(4), KeepYearly: rng.IntN(2)}
		if rng.IntN(3) == 0 {
			p.KeepWithin = time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))
		}
		if !keepsSomething(p) {
			p.KeepLast = 1
		}
		plan, err := Plan(bs, now, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != len(bs) {
			t.Fatalf("iter %d: %d decisions for %d backups", iter, len(plan), len(bs))
		}
		byID := map[string]Backup{}
		for _, b := range bs {
			byID[b.ID] = b
		}
		newestValid, newestVerified := "", ""
		lastCount := 0
		for i, d := range plan {
			if i > 0 && plan[i-1].Time.Before(d.Time) {
				t.Fatalf("iter %d: plan not sorted newest first", iter)
			}
			if d.Keep != (len(d.Reasons) > 0) {
				t.Fatalf("iter %d: %s keep=%t with reasons %v", iter, d.ID, d.Keep, d.Reasons)
			}
			b := byID[d.ID]
			if b.Invalid && !d.Keep {
				t.Fatalf("iter %d: invalid %s deleted", iter, d.ID)
			}
			if !b.Invalid && newestValid == "" {
				newestValid = d.ID
			}
			if !b.Invalid && b.Verified && newestVerified == "" {
				newestVerified = d.ID
			}
			for _, r := range d.Reasons {
				if strings.HasPrefix(r, "last ") {
					lastCount++
				}
			}
		}
		for _, keep := range []string{newestValid, newestVerified} {
			for _, d := range plan {
				if d.ID == keep && !d.Keep {
					t.Fatalf("iter %d: %s deleted", iter, keep)
				}
			}
		}
		if lastCount > p.KeepLast {
			t.Fatalf("iter %d: keep_last %d kept %d", iter, p.KeepLast, lastCount)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		14 * 24 * time.Hour: "14d",
		36 * time.Hour:      "1d12h",
		90 * time.Minute:    "1h30m",
		30 * time.Second:    "30s",
		26 * time.Hour:      "1d2h",
		5 * time.Hour:       "5h",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func BenchmarkPlanHourlyYear(b *testing.B) {
	bs := series(date("2026-01-01T00:00:00Z"), date("2026-12-31T23:00:00Z"), time.Hour)
	policy := config.Retention{KeepLast: 5, KeepHourly: 24, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, KeepYearly: 2, KeepWithin: 48 * time.Hour}
	now := date("2027-01-01T00:00:00Z")
	for b.Loop() {
		if _, err := Plan(bs, now, policy); err != nil {
			b.Fatal(err)
		}
	}
}
