package sign

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination"
)

// maxDoc bounds what is read of a manifest or record.
const maxDoc = 16 << 20

// Policy is what a Store demands of the documents it hands back.
type Policy struct {
	// Signer signs every manifest and record written; nil: they cannot be
	// written while Trust is set (a host that only reads).
	Signer *Signer
	// Trust, when set, accepts only documents signed by one of its keys.
	Trust *Trust
	// Encrypted refuses manifests of unencrypted backups: with encryption
	// configured, the writers never make one.
	Encrypted bool
}

// Store is a destination that signs the manifests, verification records and
// continuity acceptances written through it, and refuses those it reads back
// that fail the policy:
// Get returns an error wrapping ErrNotAuthentic instead of their content.
// Records are also refused when they lie about where they are: their target,
// backup, destination or start time must match their key.
type Store struct {
	destination.Destination
	Name   string // the destination's name in the config
	Policy Policy
}

var _ destination.Destination = (*Store)(nil)

// kind tells which of a backup's documents key names.
func kind(key string) (target, id, name string, k docKind) {
	target, id, name, ok := catalog.SplitKey(key)
	switch {
	case !ok:
		return "", "", "", other
	case name == catalog.ManifestName:
		return target, id, name, manifest
	}
	if _, err := catalog.RecordTime(name); err == nil {
		return target, id, name, record
	}
	if catalog.IsAcceptanceName(name) {
		return target, id, name, acceptance
	}
	return target, id, name, other
}

type docKind int

const (
	other docKind = iota
	manifest
	record
	acceptance // a person's continuity acceptance: it makes a backup a baseline
)

// Put signs manifests and records on their way out.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	if _, _, _, k := kind(key); k == other || s.Policy.Trust == nil && s.Policy.Signer == nil {
		return s.Destination.Put(ctx, key, r)
	}
	if s.Policy.Signer == nil {
		return fmt.Errorf("put %s: signing.key_file is not set: refusing to write an unsigned document", key)
	}
	doc, err := io.ReadAll(io.LimitReader(r, maxDoc+1))
	if err != nil {
		return err
	}
	if len(doc) > maxDoc {
		return fmt.Errorf("put %s: larger than %d bytes", key, maxDoc)
	}
	signed, err := s.Policy.Signer.Sign(doc)
	if err != nil {
		return fmt.Errorf("sign %s: %w", key, err)
	}
	return s.Destination.Put(ctx, key, bytes.NewReader(signed))
}

// Get checks manifests and records before handing them back.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	target, id, name, k := kind(key)
	if k == other {
		return s.Destination.Get(ctx, key)
	}
	rc, err := s.Destination.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	doc, err := io.ReadAll(io.LimitReader(rc, maxDoc+1))
	if err != nil {
		return nil, err
	}
	// Refusals are verdicts on the content (catalog.ErrInvalid); a read
	// that failed above is the store's problem, and is retried.
	if len(doc) > maxDoc {
		return nil, catalog.Invalid(fmt.Errorf("%s: larger than %d bytes", key, maxDoc))
	}
	if err := s.check(doc, k, target, id, name); err != nil {
		return nil, catalog.Invalid(fmt.Errorf("%s on %s: %w", key, s.Name, err))
	}
	return io.NopCloser(bytes.NewReader(doc)), nil
}

func (s *Store) check(doc []byte, k docKind, target, id, name string) error {
	if s.Policy.Trust != nil {
		if _, err := s.Policy.Trust.Verify(doc); err != nil {
			return err
		}
	}
	switch k {
	case manifest:
		if !s.Policy.Encrypted {
			return nil
		}
		var m struct {
			Encryption json.RawMessage `json:"encryption"`
		}
		if err := json.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("%w: %v", ErrNotAuthentic, err)
		}
		if len(m.Encryption) == 0 || string(m.Encryption) == "null" {
			return fmt.Errorf("%w: the manifest says the backup is unencrypted, and encryption is configured", ErrNotAuthentic)
		}
	case record:
		return CheckRecordPlace(doc, s.Name, target, id, name)
	case acceptance:
		var a struct {
			Target   string `json:"target"`
			BackupID string `json:"backup_id"`
		}
		if err := json.Unmarshal(doc, &a); err != nil {
			return fmt.Errorf("%w: acceptance: %v", ErrNotAuthentic, err)
		}
		if a.Target != target || a.BackupID != id {
			return fmt.Errorf("%w: acceptance of %s/%s copied to %s/%s", ErrNotAuthentic, a.Target, a.BackupID, target, id)
		}
	}
	return nil
}

// CheckRecordPlace refuses a record whose fields disagree with where it lies:
// a record copied from another backup, target or destination (dest; ""
// skips that check), or renamed to sort as newer than it is.
func CheckRecordPlace(doc []byte, dest, target, id, name string) error {
	var r struct {
		Target      string    `json:"target"`
		Destination string    `json:"destination"`
		BackupID    string    `json:"backup_id"`
		Started     time.Time `json:"started"`
	}
	if err := json.Unmarshal(doc, &r); err != nil {
		return fmt.Errorf("%w: record: %v", ErrNotAuthentic, err)
	}
	named, _ := catalog.RecordTime(name)
	var lies []string
	if r.Target != target {
		lies = append(lies, fmt.Sprintf("names target %q", r.Target))
	}
	if r.BackupID != id {
		lies = append(lies, fmt.Sprintf("names backup %q", r.BackupID))
	}
	if dest != "" && r.Destination != dest {
		lies = append(lies, fmt.Sprintf("names destination %q", r.Destination))
	}
	if !r.Started.UTC().Truncate(time.Second).Equal(named) {
		lies = append(lies, "started "+r.Started.UTC().Format(time.RFC3339)+", not at the time in its name")
	}
	if len(lies) > 0 {
		return fmt.Errorf("%w: record lies about where it lies: %s", ErrNotAuthentic, strings.Join(lies, "; "))
	}
	return nil
}
