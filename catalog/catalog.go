// Package catalog knows how backups are laid out on a destination and which
// of them exist:
//
//	<target>/<backup-id>/<artifact files>
//	<target>/<backup-id>/manifest.json   written last: the commit marker
//
// A backup exists on a destination only if its manifest does. Everything else
// under a backup id is debris from a failed or interrupted run.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
)

// ManifestName is the commit marker's file name.
const ManifestName = "manifest.json"

// FormatVersion is the manifest format this build writes and reads.
const FormatVersion = 1

const idTimeLayout = "20060102T150405Z"

// maxManifestSize bounds what List reads of a manifest.
const maxManifestSize = 16 << 20

// NewID returns a backup id that sorts by time: 20261122T020000Z-<random>.
func NewID(t time.Time) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return t.UTC().Format(idTimeLayout) + "-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// IDTime returns the time encoded in a backup id.
func IDTime(id string) (time.Time, error) {
	ts, suffix, ok := strings.Cut(id, "-")
	if !ok || suffix == "" || strings.ContainsAny(suffix, "/.") {
		return time.Time{}, fmt.Errorf("malformed backup id %q", id)
	}
	t, err := time.Parse(idTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("malformed backup id %q", id)
	}
	return t, nil
}

// Key returns the object key of a file in a backup.
func Key(target, id, name string) string { return target + "/" + id + "/" + name }

// Manifest describes one committed backup.
type Manifest struct {
	Format        int                `json:"format"`
	ID            string             `json:"id"`
	Target        string             `json:"target"`
	Engine        string             `json:"engine"`
	ServerVersion string             `json:"server_version"`
	Tools         map[string]string  `json:"tools"`
	Start         time.Time          `json:"start"`
	End           time.Time          `json:"end"`
	Compression   string             `json:"compression"`
	Encryption    *Encryption        `json:"encryption,omitempty"`
	Artifacts     []Artifact         `json:"artifacts"`
	Source        engine.SourceStats `json:"source"`
}

// Encryption records who can decrypt the artifacts, never the keys.
type Encryption struct {
	Scheme                string   `json:"scheme"`
	RecipientFingerprints []string `json:"recipient_fingerprints"`
}

// Artifact is one stored file, with size and SHA-256 of the stored bytes.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// StoredSize is the total size of the backup's artifacts.
func (m *Manifest) StoredSize() int64 {
	var n int64
	for _, a := range m.Artifacts {
		n += a.Size
	}
	return n
}

// Validate checks a manifest read from a destination against where it lies.
func (m *Manifest) Validate(target, id string) error {
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("manifest format %d, this build reads %d", m.Format, FormatVersion)
	case m.ID != id:
		return fmt.Errorf("manifest names backup %q but lies under %q", m.ID, id)
	case m.Target != target:
		return fmt.Errorf("manifest names target %q but lies under %q", m.Target, target)
	case len(m.Artifacts) == 0:
		return errors.New("manifest lists no artifacts")
	}
	for _, a := range m.Artifacts {
		if a.Name == "" || strings.Contains(a.Name, "/") || a.Name == ManifestName || len(a.SHA256) != 64 || a.Size < 0 {
			return fmt.Errorf("manifest has a malformed artifact entry %q", a.Name)
		}
	}
	return nil
}

// Backup is a backup id found on a destination.
type Backup struct {
	ID       string
	Manifest *Manifest // nil when Invalid is set
	// Invalid says why a manifest exists but cannot be used: unreadable,
	// malformed, or naming another backup. Such a backup is never restored.
	Invalid string
	// Err is the error behind Invalid, for callers that tell kinds apart
	// (a manifest that is not authentic, see package sign).
	Err error
	// Records are the names of its verification records, oldest first.
	Records []string
	// Acceptances name its acceptances as a continuity baseline, oldest
	// first (accept.go).
	Acceptances []string
}

// Debris is a backup id without a manifest.
type Debris struct {
	ID      string
	Objects []destination.Object
	Newest  time.Time // newest ModTime among Objects
}

// Listing is what one destination holds for one target.
type Listing struct {
	Backups []Backup // sorted by id, oldest first
	Debris  []Debris
}

// List reads a target's backups on d. A failed listing is an error, never an
// empty result.
func List(ctx context.Context, d destination.Destination, target string) (*Listing, error) {
	objs, err := d.List(ctx, target+"/")
	if err != nil {
		return nil, err
	}
	byID := map[string][]destination.Object{}
	var ids []string
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, target+"/")
		id, _, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		if _, err := IDTime(id); err != nil {
			continue // not ours
		}
		if _, seen := byID[id]; !seen {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], o)
	}
	sort.Strings(ids)
	l := &Listing{}
	for _, id := range ids {
		group := byID[id]
		if !hasManifest(group, target, id) {
			dbr := Debris{ID: id, Objects: group}
			for _, o := range group {
				if o.ModTime.After(dbr.Newest) {
					dbr.Newest = o.ModTime
				}
			}
			l.Debris = append(l.Debris, dbr)
			continue
		}
		m, err := ReadManifest(ctx, d, target, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.Backups = append(l.Backups, Backup{ID: id, Invalid: err.Error(), Err: err})
			continue
		}
		l.Backups = append(l.Backups, Backup{ID: id, Manifest: m, Records: records(group, target, id),
			Acceptances: acceptances(group, target, id)})
	}
	return l, nil
}

// records returns the verification record names among a backup's objects.
// Only names in the exact record format count; anything else is not ours.
func records(objs []destination.Object, target, id string) []string {
	var names []string
	for _, o := range objs {
		name := strings.TrimPrefix(o.Key, Key(target, id, ""))
		if _, err := RecordTime(name); err == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// WriteRecord stores a verification record next to the backup it verified.
func WriteRecord(ctx context.Context, d destination.Destination, target, id, name string, record any) error {
	data, err := json.MarshalIndent(record, "", "  ")
	if err != nil {
		return err
	}
	return d.Put(ctx, Key(target, id, name), strings.NewReader(string(data)+"\n"))
}

// ReadRecord reads a verification record into record.
func ReadRecord(ctx context.Context, d destination.Destination, target, id, name string, record any) error {
	rc, err := d.Get(ctx, Key(target, id, name))
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return fmt.Errorf("read %s of %s/%s: %w", name, target, id, err)
	}
	if err := json.Unmarshal(data, record); err != nil {
		return fmt.Errorf("%s of %s/%s: %w", name, target, id, err)
	}
	return nil
}

func hasManifest(objs []destination.Object, target, id string) bool {
	for _, o := range objs {
		if o.Key == Key(target, id, ManifestName) {
			return true
		}
	}
	return false
}

// ReadManifest reads and validates one backup's manifest.
func ReadManifest(ctx context.Context, d destination.Destination, target, id string) (*Manifest, error) {
	rc, err := d.Get(ctx, Key(target, id, ManifestName))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s/%s: %w", target, id, err)
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("manifest of %s/%s is larger than %d bytes", target, id, maxManifestSize)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest of %s/%s: %w", target, id, err)
	}
	if err := m.Validate(target, id); err != nil {
		return nil, fmt.Errorf("manifest of %s/%s: %w", target, id, err)
	}
	return &m, nil
}

// WriteManifest commits a backup on d. Call it only after every artifact is
// stored and checked.
func WriteManifest(ctx context.Context, d destination.Destination, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return d.Put(ctx, Key(m.Target, m.ID, ManifestName), strings.NewReader(string(data)+"\n"))
}

// DebrisGrace is how old debris (a backup id without a manifest) must be
// before it is removed. Artifacts land moments before their manifest, so
// anything this old was left by a run that died.
const DebrisGrace = time.Hour

// RemoveDebris deletes debris whose newest object is older than grace. The
// grace period protects a run still writing: its artifacts land moments
// before its manifest, so anything older is left by a run that died.
func RemoveDebris(ctx context.Context, d destination.Destination, l *Listing, now time.Time, grace time.Duration) (removed []string, err error) {
	for _, dbr := range l.Debris {
		if now.Sub(dbr.Newest) < grace {
			continue
		}
		var errs []error
		for _, o := range dbr.Objects {
			if err := d.Delete(ctx, o.Key); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return removed, errors.Join(errs...)
		}
		removed = append(removed, dbr.ID)
	}
	return removed, nil
}
