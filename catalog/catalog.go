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
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
)

// ManifestName is the commit marker's file name.
const ManifestName = "manifest.json"

// FormatVersion is the manifest format this build writes and reads.
const FormatVersion = 1

const idTimeLayout = "20060102T150405Z"

// MaxManifestSize bounds what is read of a manifest or record: a bigger
// one is invalid, whatever it holds.
const MaxManifestSize = 16 << 20

// NewID returns a backup id that sorts by time: 20261122T020000Z-<suffix>
// (timeSuffix: two backups of one second sort in the order they were taken).
func NewID(t time.Time) string {
	return t.UTC().Format(idTimeLayout) + "-" + timeSuffix(t)
}

// timeSuffix is 4 characters of the time within the second (units of
// 1024 ns) and 4 random ones, in base32 whose digits sort as their values
// do: names made in one second sort in the order they were made.
func timeSuffix(t time.Time) string {
	var b [5]byte
	if _, err := rand.Read(b[2:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	frac := uint32(t.Nanosecond() >> 10) // < 2^20
	b[0], b[1], b[2] = byte(frac>>12), byte(frac>>4), b[2]&0x0f|byte(frac<<4)
	return strings.ToLower(base32.HexEncoding.EncodeToString(b[:]))
}

// IDTime returns the time encoded in a backup id, and an error for any name
// that is not a backup id: ids are read back from storage, where anyone with
// write access may have put anything.
func IDTime(id string) (time.Time, error) {
	ts, suffix, ok := strings.Cut(id, "-")
	if !ok || !validIDSuffix(suffix) {
		return time.Time{}, fmt.Errorf("malformed backup id %q", id)
	}
	t, err := time.Parse(idTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("malformed backup id %q", id)
	}
	return t, nil
}

// validIDSuffix accepts 1 to 32 lower-case letters and digits: what NewID
// writes, with room for older or hand-made ids, and never a dot, slash or
// control character.
func validIDSuffix(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
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
	return validateHead(m.Format, m.ID, m.Target, id, target, m.Artifacts, len(m.Source.Tables))
}

// validateHead checks what a manifest says about itself and its artifacts.
func validateHead(format int, mid, mtarget, id, target string, artifacts []Artifact, tables int) error {
	switch {
	case format != FormatVersion:
		return fmt.Errorf("manifest format %d, this build reads %d", format, FormatVersion)
	case mid != id:
		return fmt.Errorf("manifest names backup %q but lies under %q", mid, id)
	case mtarget != target:
		return fmt.Errorf("manifest names target %q but lies under %q", mtarget, target)
	case len(artifacts) == 0:
		return errors.New("manifest lists no artifacts")
	case len(artifacts) > MaxArtifacts:
		return fmt.Errorf("manifest lists %d artifacts, at most %d are allowed", len(artifacts), MaxArtifacts)
	case tables > MaxTables:
		return fmt.Errorf("manifest lists %d tables, at most %d are allowed", tables, MaxTables)
	}
	for _, a := range artifacts {
		if err := ValidArtifactName(a.Name); err != nil || len(a.SHA256) != 64 || a.Size < 0 {
			return fmt.Errorf("manifest has a malformed artifact entry %q", a.Name)
		}
	}
	return nil
}

// MaxArtifacts and MaxTables bound what a manifest may list.
const (
	MaxArtifacts = 64
	MaxTables    = 1 << 20
)

// ValidArtifactName rejects artifact names that are not plain file names of
// a backup: empty, "." or "..", with slashes, backslashes or control
// characters, longer than 255 bytes, or the name of one of the backup's own
// documents (manifest, verification records, holds, acceptances).
func ValidArtifactName(name string) error {
	switch {
	case name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, "."):
		return fmt.Errorf("invalid artifact name %q", name)
	case name == ManifestName || strings.HasPrefix(name, recordPrefix) ||
		strings.HasPrefix(name, holdPrefix) || strings.HasPrefix(name, acceptPrefix):
		return fmt.Errorf("artifact name %q is reserved for the backup's own documents", name)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			return fmt.Errorf("invalid artifact name %q", name)
		}
	}
	return nil
}

// Backup is a backup id found on a destination. List fills in what a
// listing tells; Load reads the manifest's Summary.
type Backup struct {
	ID string
	// Object is the manifest as listed: key, size, modification time and,
	// where the store has one, ETag.
	Object destination.Object
	// Summary is what list, retention and scheduling need of the manifest;
	// nil until loaded, and when Invalid is set.
	Summary *Summary
	// Invalid says why a manifest exists but cannot be used: malformed,
	// too large, not authentic, or naming another backup. Such a backup is
	// never restored. A manifest that could not be read (the store failed)
	// is never Invalid: loading it returns an error instead.
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
	Target  string
	Backups []Backup // sorted by id, oldest first
	Debris  []Debris
}

// List reads a target's backups on d from one listing; it reads no manifest
// (Load does). A failed listing is an error, never an empty result.
func List(ctx context.Context, d destination.Destination, target string) (*Listing, error) {
	objs, err := d.List(ctx, target+"/")
	if err != nil {
		return nil, err
	}
	l := &Listing{Target: target}
	// objs is sorted by key, so each backup's objects are adjacent.
	for i := 0; i < len(objs); {
		id, ok := backupOf(objs[i].Key, target)
		j := i + 1
		for j < len(objs) {
			if next, _ := backupOf(objs[j].Key, target); next != id {
				break
			}
			j++
		}
		group := objs[i:j:j]
		i = j
		if !ok {
			continue // not ours
		}
		mo, committed := manifestOf(group, target, id)
		if !committed {
			dbr := Debris{ID: id, Objects: group}
			for _, o := range group {
				if o.ModTime.After(dbr.Newest) {
					dbr.Newest = o.ModTime
				}
			}
			l.Debris = append(l.Debris, dbr)
			continue
		}
		l.Backups = append(l.Backups, Backup{ID: id, Object: mo, Records: records(group, target, id),
			Acceptances: acceptances(group, target, id)})
	}
	return l, nil
}

// backupOf returns the backup id of a key under target/, and false for keys
// that are not in a backup's folder.
func backupOf(key, target string) (string, bool) {
	rest, ok := strings.CutPrefix(key, target+"/")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return id, false
	}
	if _, err := IDTime(id); err != nil {
		return id, false
	}
	return id, true
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

func manifestOf(objs []destination.Object, target, id string) (destination.Object, bool) {
	for _, o := range objs {
		if o.Key == Key(target, id, ManifestName) {
			return o, true
		}
	}
	return destination.Object{}, false
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
