package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/verify"
)

// historyLen is how many recent backups /status and the chart show.
const historyLen = 30

// BackupInfo is one committed backup.
type BackupInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	End     time.Time `json:"end"`
	Size    int64     `json:"size"`
	// Schema is the migration version the backup holds, e.g. "flyway 42".
	Schema string `json:"schema_version,omitempty"`
}

// DestState is what a destination holds for a target.
type DestState struct {
	Name    string `json:"name"`
	Backups int    `json:"backups"` // committed backups
	// Suspect counts backups never used: invalid or not authentic
	// manifests, and dates that cannot be believed (catalog.TimeProblem).
	Suspect int         `json:"suspect"`
	Newest  *BackupInfo `json:"newest,omitempty"`
	Error   string      `json:"error,omitempty"` // the listing failed; the rest is from the last good scan
	Scanned time.Time   `json:"scanned"`

	ids map[string]bool
}

// Point is one backup in a target's recent history.
type Point struct {
	ID             string         `json:"id"`
	Created        time.Time      `json:"created"`
	Size           int64          `json:"size"`
	RestoreSeconds float64        `json:"restore_duration_seconds,omitempty"`
	Verified       verify.Outcome `json:"verified,omitempty"` // newest verification's outcome; "" never verified
	// Accepted: a person accepted this backup as the continuity baseline.
	Accepted *catalog.Acceptance `json:"accepted,omitempty"`
}

// Catalog is a target's backups and verifications as the destinations hold
// them: the same facts `backproof list` shows.
type Catalog struct {
	Destinations []DestState `json:"destinations"`
	// Newest is the newest backup committed to every destination.
	Newest *BackupInfo `json:"newest_everywhere,omitempty"`
	// Verified is the newest backup that passed verification anywhere.
	Verified *BackupInfo `json:"verified_backup,omitempty"`
	// LastVerifications holds the newest record per destination.
	LastVerifications []*verify.Record `json:"last_verifications"`
	History           []Point          `json:"history"` // oldest first
}

// scan reads a target's catalog from its destinations, through each
// destination's cache (cache may return nil). A destination whose listing
// fails keeps its state from prev, marked with the error.
func scan(ctx context.Context, now func() time.Time, target string, dests []backup.Destination, prev *Catalog, cache func(dest string) *catalog.Cache) *Catalog {
	c := &Catalog{}
	type found struct {
		b     catalog.Backup
		dest  backup.Destination
		cache *catalog.Cache
	}
	byID := map[string][]found{}
	for _, d := range dests {
		ds := DestState{Name: d.Name, Scanned: now(), ids: map[string]bool{}}
		dc := cache(d.Name)
		l, err := catalog.Read(ctx, d, target, dc)
		if err != nil {
			if p := prev.dest(d.Name); p != nil {
				ds = *p
			}
			ds.Error = err.Error()
			c.Destinations = append(c.Destinations, ds)
			continue
		}
		for _, b := range l.Backups {
			if b.Summary == nil || catalog.TimeProblem(b, ds.Scanned) != "" {
				ds.Suspect++
				continue
			}
			ds.Backups++
			ds.ids[b.ID] = true
			ds.Newest = info(b)
			byID[b.ID] = append(byID[b.ID], found{b, d, dc})
		}
		c.Destinations = append(c.Destinations, ds)
	}

	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i := len(ids) - 1; i >= 0 && c.Newest == nil; i-- {
		everywhere := true
		for _, ds := range c.Destinations {
			everywhere = everywhere && ds.ids[ids[i]]
		}
		if everywhere {
			c.Newest = info(byID[ids[i]][0].b)
		}
	}

	// Newest first: the newest record of each backup on each destination,
	// until the history is full and a passing backup was found.
	lastOn := map[string]*verify.Record{}
	for i := len(ids) - 1; i >= 0; i-- {
		if len(ids)-i > historyLen && c.Verified != nil {
			break
		}
		var newest *verify.Record
		var accepted *catalog.Acceptance
		for _, f := range byID[ids[i]] {
			if accepted == nil && len(ids)-i <= historyLen {
				accepted, _ = catalog.ReadAcceptance(ctx, f.dest, target, f.b) // unreadable: shown as not accepted
			}
			if len(f.b.Records) == 0 {
				continue
			}
			name := f.b.Records[len(f.b.Records)-1]
			rec, err := catalog.ReadRecordCached[verify.Record](ctx, f.cache, f.dest, target, f.b.ID, name)
			if err != nil {
				rec = verify.Record{Target: target, Destination: f.dest.Name, BackupID: f.b.ID, Outcome: verify.Error,
					Reason: "unreadable record " + name + ": " + err.Error()}
			}
			if rec.Outcome == verify.Pass && c.Verified == nil {
				c.Verified = info(f.b)
			}
			if l := lastOn[f.dest.Name]; l == nil || rec.Ended.After(l.Ended) {
				lastOn[f.dest.Name] = &rec
			}
			if newest == nil || rec.Ended.After(newest.Ended) {
				newest = &rec
			}
		}
		if len(ids)-i <= historyLen {
			b := byID[ids[i]][0].b
			p := Point{ID: b.ID, Created: b.Summary.Start, Size: b.Summary.Size, Accepted: accepted}
			if newest != nil {
				p.Verified, p.RestoreSeconds = newest.Outcome, newest.RestoreSeconds
			}
			c.History = append(c.History, p)
		}
	}
	slices.Reverse(c.History)
	for _, ds := range c.Destinations {
		if r := lastOn[ds.Name]; r != nil {
			c.LastVerifications = append(c.LastVerifications, r)
		}
	}
	return c
}

func info(b catalog.Backup) *BackupInfo {
	return &BackupInfo{ID: b.ID, Created: b.Summary.Start, End: b.Summary.End, Size: b.Summary.Size,
		Schema: continuity.SchemaVersion(&engine.SourceStats{Migrations: b.Summary.Migrations})}
}

func (c *Catalog) dest(name string) *DestState {
	if c == nil {
		return nil
	}
	for i := range c.Destinations {
		if c.Destinations[i].Name == name {
			return &c.Destinations[i]
		}
	}
	return nil
}

// NewestBackup is the newest committed backup on any destination.
func (c *Catalog) NewestBackup() *BackupInfo {
	var n *BackupInfo
	for _, d := range c.Destinations {
		if d.Newest != nil && (n == nil || d.Newest.ID > n.ID) {
			n = d.Newest
		}
	}
	return n
}

// Result is the verdict of the newest verification on each destination
// together: 1 all passed, 0 one proved its backup bad, -1 one could not
// run; ok is false when nothing was ever verified.
func (c *Catalog) Result() (v float64, ok bool) {
	if len(c.LastVerifications) == 0 {
		return 0, false
	}
	v = 1
	for _, r := range c.LastVerifications {
		switch r.Outcome {
		case verify.Fail:
			return 0, true
		case verify.Error:
			v = -1
		}
	}
	return v, true
}

// LastPass is the end of the newest verification that passed.
func (c *Catalog) LastPass() time.Time {
	var t time.Time
	for _, r := range c.LastVerifications {
		if r.Outcome == verify.Pass && r.Ended.After(t) {
			t = r.Ended
		}
	}
	return t
}

// RestoreSeconds is the restore time of the newest verification that
// restored.
func (c *Catalog) RestoreSeconds() float64 {
	var newest *verify.Record
	for _, r := range c.LastVerifications {
		if r.RestoreSeconds > 0 && (newest == nil || r.Ended.After(newest.Ended)) {
			newest = r
		}
	}
	if newest == nil {
		for _, p := range slices.Backward(c.History) {
			if p.RestoreSeconds > 0 {
				return p.RestoreSeconds
			}
		}
		return 0
	}
	return newest.RestoreSeconds
}

// CheckPassed says, for a configured check, whether it held in every newest
// verification that ran it; ok is false when none ran it.
func (c *Catalog) CheckPassed(name string) (passed, ok bool) {
	passed = true
	for _, r := range c.LastVerifications {
		for _, cr := range r.Checks {
			if cr.Kind == verify.KindQuery && cr.Name == name {
				ok = true
				passed = passed && cr.Outcome == verify.Pass
			}
		}
	}
	return passed && ok, ok
}

// newestRecord is the newest of the last verifications.
func (c *Catalog) newestRecord() *verify.Record {
	var n *verify.Record
	for _, r := range c.LastVerifications {
		if n == nil || r.Ended.After(n.Ended) {
			n = r
		}
	}
	return n
}
