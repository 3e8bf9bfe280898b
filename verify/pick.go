package verify

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/sign"
)

// Picker chooses the backup a verification restores from a destination's
// committed backups (oldest first), or nil when there are none.
type Picker func(backups []catalog.Backup, now time.Time) *catalog.Backup

// Latest picks the newest backup whose dates can be believed (see
// catalog.TimeProblem). An unreadable or untrusted newest manifest is picked
// too, and fails: skipping it would hide a broken backup.
func Latest(backups []catalog.Backup, now time.Time) *catalog.Backup {
	for i := len(backups) - 1; i >= 0; i-- {
		if pickable(backups[i], now) {
			return &backups[i]
		}
	}
	return nil
}

// pickable: a backup whose dates can be believed and whose manifest is not
// refused as not authentic. A manifest invalid for other reasons (corrupt,
// unreadable) stays pickable, so that verifying it reports the bad backup.
func pickable(b catalog.Backup, now time.Time) bool {
	return catalog.TimeProblem(b, now) == "" && !errors.Is(b.Err, sign.ErrNotAuthentic)
}

// Random picks uniformly among the backups created within window of now, so
// that over time older copies get restored as well as the newest; with none
// that recent it picks the newest.
func Random(window time.Duration, rnd *rand.Rand) Picker {
	return func(backups []catalog.Backup, now time.Time) *catalog.Backup {
		var recent []int
		for i, b := range backups {
			if t, err := catalog.IDTime(b.ID); err == nil && !t.Before(now.Add(-window)) && pickable(b, now) {
				recent = append(recent, i)
			}
		}
		if len(recent) == 0 {
			return Latest(backups, now)
		}
		return &backups[recent[rnd.IntN(len(recent))]]
	}
}

// PickerFor returns the picker a target's verify settings ask for.
func PickerFor(v *config.Verify, rnd *rand.Rand) Picker {
	if v != nil && v.Pick == config.VerifyPickRandom {
		return Random(v.Window, rnd)
	}
	return Latest
}
