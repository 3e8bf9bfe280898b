package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/engine"
)

func TestID(t *testing.T) {
	at := time.Date(2026, 11, 22, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	id := NewID(at)
	if !regexp.MustCompile(`^20261122T010000Z-[0-9a-v]{8}$`).MatchString(id) {
		t.Fatalf("NewID = %q", id)
	}
	got, err := IDTime(id)
	if err != nil || !got.Equal(at) {
		t.Fatalf("IDTime(%q) = %v, %v", id, got, err)
	}
	ids := []string{NewID(at.Add(time.Hour)), NewID(at), NewID(at.Add(-time.Hour))}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	if sorted[0] != ids[2] || sorted[2] != ids[0] {
		t.Errorf("ids do not sort by time: %v", sorted)
	}
	// Within one second, in the order they were taken (2 µs apart and more).
	var second []string
	for _, ns := range []int{0, 2048, 1e6, 250e6, 999_999_999} {
		second = append(second, NewID(at.Add(time.Duration(ns))))
	}
	if !slices.IsSorted(second) {
		t.Errorf("ids of one second do not sort by time: %v", second)
	}
	for _, bad := range []string{"", "20261122T010000Z", "20261122T010000Z-", "2026-11-22-abc", "20261122T010000Z-a/b",
		"20261122T010000Z-..", "20261122T010000Z-a\nb", "20261122T010000Z-a\x1bb", "20261122T010000Z-A.B", "20261122T010000Z-" + strings.Repeat("a", 33)} {
		if _, err := IDTime(bad); err == nil {
			t.Errorf("IDTime(%q) accepted", bad)
		}
	}
}

func validManifest(id string) *Manifest {
	return &Manifest{Format: FormatVersion, ID: id, Target: "orders", Engine: "postgres", Compression: "zstd",
		Artifacts: []Artifact{{Name: "dump.pgdump.zst", Size: 3, SHA256: strings.Repeat("a", 64)}}}
}

func TestListSeparatesBackupsDebrisAndInvalid(t *testing.T) {
	ctx := context.Background()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good, debris, wrong, garbage := NewID(now.Add(-4*time.Hour)), NewID(now.Add(-3*time.Hour)), NewID(now.Add(-2*time.Hour)), NewID(now.Add(-time.Hour))
	put := func(key, body string) {
		if err := store.Put(ctx, key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	put(Key("orders", good, "dump.pgdump.zst"), "abc")
	if err := WriteManifest(ctx, store, validManifest(good)); err != nil {
		t.Fatal(err)
	}
	put(Key("orders", debris, "dump.pgdump.zst"), "abc")
	m := validManifest(good) // names another backup
	m.ID = good
	put(Key("orders", wrong, ManifestName), `{"format":1,"id":"`+good+`","target":"orders","artifacts":[]}`)
	put(Key("orders", garbage, ManifestName), "{not json")
	put("orders/not-an-id/file", "x")
	put(Key("payments", NewID(now), ManifestName), "{}")

	l, err := Read(ctx, store, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Backups) != 3 || l.Backups[0].ID != good || l.Backups[0].Summary == nil {
		t.Fatalf("backups: %+v", l.Backups)
	}
	for _, b := range l.Backups[1:] {
		if b.Summary != nil || b.Invalid == "" || !errors.Is(b.Err, ErrInvalid) {
			t.Errorf("%s should be invalid: %+v", b.ID, b)
		}
	}
	if len(l.Debris) != 1 || l.Debris[0].ID != debris {
		t.Fatalf("debris: %+v", l.Debris)
	}

	// Within the grace period debris stays; past it, it goes.
	if removed, err := RemoveDebris(ctx, store, l, now, time.Hour); err != nil || len(removed) != 0 {
		t.Fatalf("young debris removed: %v %v", removed, err)
	}
	if removed, err := RemoveDebris(ctx, store, l, now.Add(2*time.Hour), time.Hour); err != nil || len(removed) != 1 {
		t.Fatalf("old debris kept: %v %v", removed, err)
	}
	if l, err = List(ctx, store, "orders"); err != nil || len(l.Debris) != 0 || len(l.Backups) != 3 {
		t.Fatalf("after removal: %+v %v", l, err)
	}
}

func TestManifestValidate(t *testing.T) {
	id := NewID(time.Now())
	mutate := map[string]func(m *Manifest){
		"future format":  func(m *Manifest) { m.Format = 2 },
		"other id":       func(m *Manifest) { m.ID = NewID(time.Now().Add(time.Hour)) },
		"other target":   func(m *Manifest) { m.Target = "payments" },
		"no artifacts":   func(m *Manifest) { m.Artifacts = nil },
		"artifact path":  func(m *Manifest) { m.Artifacts[0].Name = "../x" },
		"short checksum": func(m *Manifest) { m.Artifacts[0].SHA256 = "abc" },
		"dot":            func(m *Manifest) { m.Artifacts[0].Name = "." },
		"dotdot":         func(m *Manifest) { m.Artifacts[0].Name = ".." },
		"hidden":         func(m *Manifest) { m.Artifacts[0].Name = ".tmp" },
		"control char":   func(m *Manifest) { m.Artifacts[0].Name = "dump\x1b[2J.zst" },
		"newline":        func(m *Manifest) { m.Artifacts[0].Name = "dump\n.zst" },
		"backslash":      func(m *Manifest) { m.Artifacts[0].Name = "..\\x" },
		"record":         func(m *Manifest) { m.Artifacts[0].Name = "verify-20261122T020000Z.json" },
		"hold":           func(m *Manifest) { m.Artifacts[0].Name = "hold-20261122T020000Z-aaaaaaaa.json" },
		"acceptance":     func(m *Manifest) { m.Artifacts[0].Name = "accept-20261122T020000Z.json" },
		"manifest":       func(m *Manifest) { m.Artifacts[0].Name = ManifestName },
		"too many artifacts": func(m *Manifest) {
			for i := range MaxArtifacts {
				m.Artifacts = append(m.Artifacts, Artifact{Name: fmt.Sprintf("part%d.zst", i), SHA256: strings.Repeat("a", 64)})
			}
		},
		"too many tables": func(m *Manifest) { m.Source.Tables = make([]engine.TableStats, MaxTables+1) },
	}
	if err := validManifest(id).Validate("orders", id); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	for name, f := range mutate {
		m := validManifest(id)
		f(m)
		if err := m.Validate("orders", id); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// At the bounds: accepted.
	m := validManifest(id)
	for i := range MaxArtifacts - 1 {
		m.Artifacts = append(m.Artifacts, Artifact{Name: fmt.Sprintf("part%d.zst", i), SHA256: strings.Repeat("a", 64)})
	}
	m.Source.Tables = make([]engine.TableStats, MaxTables)
	if err := m.Validate("orders", id); err != nil {
		t.Errorf("a manifest at the bounds: %v", err)
	}
}

// A manifest larger than MaxManifestSize is invalid, read no further, and
// never retried as if the store had failed.
func TestOversizeManifestIsInvalid(t *testing.T) {
	ctx := context.Background()
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := NewID(time.Now())
	data, err := json.Marshal(validManifest(id))
	if err != nil {
		t.Fatal(err)
	}
	// Valid JSON, padded with spaces past the bound.
	big := append(data, bytes.Repeat([]byte(" "), MaxManifestSize+1-len(data))...)
	if err := store.Put(ctx, Key("orders", id, ManifestName), bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	_, err = ReadManifest(ctx, store, "orders", id)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than 16777216 bytes") {
		t.Errorf("ReadManifest of %d bytes: %v", len(big), err)
	}
	// One byte less is read.
	if err := store.Put(ctx, Key("orders", id, ManifestName), bytes.NewReader(big[:MaxManifestSize])); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(ctx, store, "orders", id); err != nil {
		t.Errorf("ReadManifest of %d bytes: %v", MaxManifestSize, err)
	}
}
