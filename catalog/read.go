package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
)

// ErrInvalid marks a manifest or record whose content is refused: too large,
// malformed, naming another backup, or not authentic (package sign wraps its
// refusals with it too). It is a verdict on what is stored. Any other error
// from reading one means the store could not be read, which says nothing
// about the backup.
var ErrInvalid = errors.New("invalid document")

// ReadError is a document that could not be read after retries: the store
// failed (5xx, throttling, connection reset, timeout). It is an operational
// error, never a verdict on the backup.
type ReadError struct {
	Key      string
	Attempts int
	Err      error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("read %s (%d attempts): %v", e.Key, e.Attempts, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// Retries is how often a failed read of a manifest or record is tried
// again, and Backoff the wait before the first retry (doubling after).
// Tests lower Backoff.
var (
	Retries = 4
	Backoff = 250 * time.Millisecond
)

// readDoc reads a small document, bounded by MaxManifestSize, retrying
// reads that failed for reasons other than its absence or content.
func readDoc(ctx context.Context, d destination.Destination, key string) ([]byte, error) {
	wait := Backoff
	for attempt := 1; ; attempt++ {
		data, err := readOnce(ctx, d, key)
		if err == nil || !retryable(ctx, err) {
			return data, err
		}
		if attempt > Retries {
			return nil, &ReadError{Key: key, Attempts: attempt, Err: err}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &ReadError{Key: key, Attempts: attempt, Err: err}
		case <-t.C:
		}
		wait *= 2
	}
}

func readOnce(ctx context.Context, d destination.Destination, key string) ([]byte, error) {
	rc, err := d.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(data) > MaxManifestSize {
		return nil, Invalid(fmt.Errorf("%s is larger than %d bytes", key, MaxManifestSize))
	}
	return data, nil
}

func retryable(ctx context.Context, err error) bool {
	var ke *destination.KeyError
	return ctx.Err() == nil && !errors.Is(err, destination.ErrNotFound) && !errors.Is(err, ErrInvalid) &&
		!errors.As(err, &ke)
}

// ReadManifest reads and validates one backup's manifest, whole. A manifest
// that is malformed or refused wraps ErrInvalid; a missing one
// destination.ErrNotFound; a store that failed is a *ReadError.
func ReadManifest(ctx context.Context, d destination.Destination, target, id string) (*Manifest, error) {
	data, err := readDoc(ctx, d, Key(target, id, ManifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, Invalid(fmt.Errorf("manifest of %s/%s: %w", target, id, err))
	}
	if err := m.Validate(target, id); err != nil {
		return nil, Invalid(fmt.Errorf("manifest of %s/%s: %w", target, id, err))
	}
	return &m, nil
}

// ReadRecord reads a verification record (or acceptance) into record.
func ReadRecord(ctx context.Context, d destination.Destination, target, id, name string, record any) error {
	data, err := readDoc(ctx, d, Key(target, id, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, record); err != nil {
		return Invalid(fmt.Errorf("%s of %s/%s: %w", name, target, id, err))
	}
	return nil
}

// Summary is what listing, retention and scheduling need of a manifest. It
// has a bounded size whatever the manifest holds: the tables and schema
// objects are not kept (ReadManifest reads them for the one backup that is
// restored or verified).
type Summary struct {
	Engine        string
	ServerVersion string
	Compression   string
	Start, End    time.Time
	Size          int64 // stored bytes of all artifacts
	Artifacts     int
	Encryption    *Encryption
	Migrations    []engine.Migration
}

// maxMigrations bounds the migration entries a Summary keeps.
const maxMigrations = 16

// manifestHead is the part of a manifest decoded for a Summary: the JSON
// decoder skips the rest without keeping it.
type manifestHead struct {
	Format        int         `json:"format"`
	ID            string      `json:"id"`
	Target        string      `json:"target"`
	Engine        string      `json:"engine"`
	ServerVersion string      `json:"server_version"`
	Start         time.Time   `json:"start"`
	End           time.Time   `json:"end"`
	Compression   string      `json:"compression"`
	Encryption    *Encryption `json:"encryption"`
	Artifacts     []Artifact  `json:"artifacts"`
	Source        struct {
		Migrations []engine.Migration `json:"migrations"`
	} `json:"source"`
}

func readSummary(ctx context.Context, d destination.Destination, target, id string) (*Summary, error) {
	data, err := readDoc(ctx, d, Key(target, id, ManifestName))
	if err != nil {
		return nil, err
	}
	var h manifestHead
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, Invalid(fmt.Errorf("manifest of %s/%s: %w", target, id, err))
	}
	if err := validateHead(h.Format, h.ID, h.Target, id, target, h.Artifacts, 0); err != nil {
		return nil, Invalid(fmt.Errorf("manifest of %s/%s: %w", target, id, err))
	}
	s := &Summary{Engine: clip(h.Engine), ServerVersion: clip(h.ServerVersion), Compression: clip(h.Compression),
		Start: h.Start, End: h.End, Artifacts: len(h.Artifacts), Encryption: h.Encryption}
	for _, a := range h.Artifacts {
		s.Size += a.Size
	}
	if s.Encryption != nil && len(s.Encryption.RecipientFingerprints) > maxMigrations {
		s.Encryption.RecipientFingerprints = s.Encryption.RecipientFingerprints[:maxMigrations]
	}
	if len(h.Source.Migrations) > maxMigrations {
		h.Source.Migrations = h.Source.Migrations[:maxMigrations]
	}
	s.Migrations = h.Source.Migrations
	return s, nil
}

// clip bounds a string a Summary keeps.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

// Summarize returns the Summary of a whole manifest.
func Summarize(m *Manifest) *Summary {
	return &Summary{Engine: m.Engine, ServerVersion: m.ServerVersion, Compression: m.Compression,
		Start: m.Start, End: m.End, Size: m.StoredSize(), Artifacts: len(m.Artifacts),
		Encryption: m.Encryption, Migrations: m.Source.Migrations}
}

// Parallel is how many manifests Load reads at once.
const Parallel = 8

// Load reads the Summary of every backup in l that has none, Parallel at a
// time, through c when it is not nil: a manifest listed with the same key,
// size, time and ETag as when c last read it is not read again. A manifest
// whose content is refused marks its backup Invalid; one that vanished
// since the listing (pruned meanwhile) drops out of l; one that could not be
// read is an error, and l is then incomplete.
func (l *Listing) Load(ctx context.Context, d destination.Destination, c *Cache) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	gone := make([]bool, len(l.Backups))
	for i := range l.Backups {
		b := &l.Backups[i]
		if b.Summary != nil || b.Invalid != "" {
			continue
		}
		if c.get(l.Target, b) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := b.load(ctx, d, l.Target)
			switch {
			case err == nil:
				c.put(l.Target, b)
			case errors.Is(err, destination.ErrNotFound):
				gone[i] = true
			default:
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kept := l.Backups[:0]
	for i, b := range l.Backups {
		if !gone[i] {
			kept = append(kept, b)
		}
	}
	l.Backups = kept
	c.retain(l)
	return nil
}

// Load reads b's Summary; an invalid manifest sets Invalid and returns nil.
func (b *Backup) Load(ctx context.Context, d destination.Destination, target string) error {
	if b.Summary != nil || b.Invalid != "" {
		return nil
	}
	return b.load(ctx, d, target)
}

func (b *Backup) load(ctx context.Context, d destination.Destination, target string) error {
	s, err := readSummary(ctx, d, target, b.ID)
	switch {
	case err == nil:
		b.Summary = s
	case errors.Is(err, ErrInvalid):
		b.Invalid, b.Err = err.Error(), err
	default:
		return err
	}
	return nil
}

// Read lists a target's backups on d and loads their summaries.
func Read(ctx context.Context, d destination.Destination, target string, c *Cache) (*Listing, error) {
	l, err := List(ctx, d, target)
	if err != nil {
		return nil, err
	}
	if err := l.Load(ctx, d, c); err != nil {
		return nil, err
	}
	return l, nil
}

// Cache keeps the Summaries (and invalid verdicts) of one destination's
// manifests across listings, so that a daemon's repeated scans read only the
// manifests that are new or changed. A Cache belongs to one destination
// under one configuration: the same store read under another signing policy
// needs another Cache. It holds one entry per backup still listed, so its
// size is bounded by what the destination holds. A nil *Cache caches
// nothing. Safe for concurrent use.
type Cache struct {
	mu   sync.Mutex
	m    map[string]map[string]cached // by target, then backup id
	docs map[string]any               // decoded records by key
}

type cached struct {
	obj     destination.Object
	summary *Summary
	invalid string
	err     error
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{m: map[string]map[string]cached{}, docs: map[string]any{}} }

// ReadRecordCached is ReadRecord through c: verification records and
// acceptances are written once under a unique name and never changed, so
// one read is enough. A nil c always reads.
func ReadRecordCached[T any](ctx context.Context, c *Cache, d destination.Destination, target, id, name string) (T, error) {
	key := Key(target, id, name)
	if c != nil {
		c.mu.Lock()
		doc := c.docs[key]
		c.mu.Unlock()
		if v, ok := doc.(T); ok {
			return v, nil
		}
		if raw, ok := doc.(json.RawMessage); ok { // from a cache file
			var v T
			if json.Unmarshal(raw, &v) == nil {
				return v, nil
			}
		}
	}
	var v T
	if err := ReadRecord(ctx, d, target, id, name, &v); err != nil {
		return v, err
	}
	if c != nil {
		c.mu.Lock()
		c.docs[key] = v
		c.mu.Unlock()
	}
	return v, nil
}

func (c *Cache) get(target string, b *Backup) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[target][b.ID]
	if !ok || !sameObject(e.obj, b.Object) {
		return false
	}
	b.Summary, b.Invalid, b.Err = e.summary, e.invalid, e.err
	return true
}

func (c *Cache) put(target string, b *Backup) {
	if c == nil || b.Object.Key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[target] == nil {
		c.m[target] = map[string]cached{}
	}
	c.m[target][b.ID] = cached{obj: b.Object, summary: b.Summary, invalid: b.Invalid, err: b.Err}
}

// retain drops the entries of backups no longer in l.
func (c *Cache) retain(l *Listing) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	entries := c.m[l.Target]
	listed := make(map[string]bool, len(l.Backups))
	for _, b := range l.Backups {
		listed[b.ID] = true
	}
	for id := range entries {
		if !listed[id] {
			delete(entries, id)
		}
	}
	for key := range c.docs {
		if t, id, _, ok := SplitKey(key); ok && t == l.Target && !listed[id] {
			delete(c.docs, key)
		}
	}
}

// sameObject: a listed object unchanged since it was read. Stores without
// ETags (local) compare size and modification time, to the nanosecond.
func sameObject(a, b destination.Object) bool {
	return a.Key == b.Key && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.ETag == b.ETag
}

// Invalid marks err as a refusal of a document's content (ErrInvalid),
// keeping its message.
func Invalid(err error) error { return invalidError{err} }

type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }
