package catalog

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/backproof/backproof/destination"
)

// An acceptance records that a person looked at a backup that failed
// continuity (a table emptied, an index dropped) and accepted its state as
// the new baseline. It lies next to the backup as accept-<timestamp>.json.
const acceptPrefix = "accept-"

// AcceptanceFormat is the version of the acceptance layout.
const AcceptanceFormat = 1

// Acceptance is who accepted a backup as the new continuity baseline, when
// and why.
type Acceptance struct {
	Format   int       `json:"format"`
	Target   string    `json:"target"`
	BackupID string    `json:"backup_id"`
	By       string    `json:"by"` // user@host
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
}

// AcceptanceName names an acceptance made at t.
func AcceptanceName(t time.Time) string {
	return acceptPrefix + t.UTC().Format("20060102T150405Z") + ".json"
}

// IsAcceptanceName reports whether name (within a backup) is an acceptance.
func IsAcceptanceName(name string) bool {
	return strings.HasPrefix(name, acceptPrefix) && strings.HasSuffix(name, ".json") && !strings.Contains(name, "/")
}

// WriteAcceptance stores a next to the backup it accepts.
func WriteAcceptance(ctx context.Context, d destination.Destination, a *Acceptance) error {
	return WriteRecord(ctx, d, a.Target, a.BackupID, AcceptanceName(a.At), a)
}

// ReadAcceptance reads the newest acceptance of b; nil when it has none.
func ReadAcceptance(ctx context.Context, d destination.Destination, target string, b Backup) (*Acceptance, error) {
	if len(b.Acceptances) == 0 {
		return nil, nil
	}
	var a Acceptance
	if err := ReadRecord(ctx, d, target, b.ID, b.Acceptances[len(b.Acceptances)-1], &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// acceptances returns the acceptance names among a backup's objects,
// oldest first.
func acceptances(objs []destination.Object, target, id string) []string {
	var names []string
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, Key(target, id, ""))
		if IsAcceptanceName(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
