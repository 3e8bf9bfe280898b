package prune_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/destination/s3"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/prune"
	"github.com/backproof/backproof/retention"
	"github.com/backproof/backproof/verify"
)

const target = "orders"

// Every test runs against a local directory and a MinIO bucket.
func backends(t *testing.T) map[string]func(t *testing.T) destination.Destination {
	env := testenv.S3(t)
	return map[string]func(t *testing.T) destination.Destination{
		"local": func(t *testing.T) destination.Destination {
			d, err := local.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"minio": func(t *testing.T) destination.Destination {
			d, err := s3.New(context.Background(), s3.Config{
				Bucket: testenv.NewBucket(t, env), Region: env.Region, Endpoint: env.Endpoint,
				PathStyle: true, AccessKeyID: env.AccessKey, SecretAccessKey: env.SecretKey,
			})
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
}

func forEachBackend(t *testing.T, fn func(t *testing.T, newDest func(t *testing.T) destination.Destination)) {
	for name, newDest := range backends(t) {
		t.Run(name, func(t *testing.T) { fn(t, newDest) })
	}
}

// Backups are dated from 60 days ago. Objects carry the real time of their
// writing, so a prune that should find debris older than the grace period
// runs at later().
var day0 = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -60).Add(2 * time.Hour)

func later() time.Time { return time.Now().Add(catalog.DebrisGrace + time.Hour) }

// store writes a committed backup created day days after day0, with a
// verification record per outcome given, and returns its id.
func store(t *testing.T, d destination.Destination, day int, outcomes ...verify.Outcome) string {
	t.Helper()
	ctx := context.Background()
	created := day0.AddDate(0, 0, day)
	id := catalog.NewID(created)
	data := make([]byte, 1000+day)
	rand.Read(data)
	sum := sha256.Sum256(data)
	if err := d.Put(ctx, catalog.Key(target, id, "dump.pgdump.zst"), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		rec := verify.Record{Format: verify.RecordFormat, Target: target, BackupID: id, Outcome: o}
		if err := catalog.WriteRecord(ctx, d, target, id, catalog.RecordName(created.Add(time.Duration(i+1)*time.Hour)), rec); err != nil {
			t.Fatal(err)
		}
	}
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: id, Target: target, Engine: "postgres",
		Start: created, End: created.Add(time.Minute), Compression: "zstd",
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	if err := catalog.WriteManifest(ctx, d, m); err != nil {
		t.Fatal(err)
	}
	return id
}

// storeDebris writes what a failed backup leaves: an artifact, no manifest.
func storeDebris(t *testing.T, d destination.Destination, day int) string {
	t.Helper()
	id := catalog.NewID(day0.AddDate(0, 0, day))
	if err := d.Put(context.Background(), catalog.Key(target, id, "dump.pgdump.zst"), strings.NewReader("partial")); err != nil {
		t.Fatal(err)
	}
	return id
}

// listed returns the ids of committed backups, checking that each is whole:
// every artifact present with the size its manifest records.
func listed(t *testing.T, d destination.Destination) []string {
	t.Helper()
	ctx := context.Background()
	l, err := catalog.List(ctx, d, target)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range l.Backups {
		m, err := catalog.ReadManifest(ctx, d, target, b.ID)
		if err != nil {
			t.Fatalf("%s listed with an invalid manifest: %v", b.ID, err)
		}
		for _, a := range m.Artifacts {
			obj, err := d.Stat(ctx, catalog.Key(target, b.ID, a.Name))
			if err != nil || obj.Size != a.Size {
				t.Fatalf("%s is listed as a backup but its artifact %s is %v, %v", b.ID, a.Name, obj, err)
			}
		}
		ids = append(ids, b.ID)
	}
	return ids
}

func allKeys(t *testing.T, d destination.Destination) []string {
	t.Helper()
	objs, err := d.List(context.Background(), target+"/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, target+"/"+lease.Dir+"/") {
			keys = append(keys, o.Key)
		}
	}
	return keys
}

func hold(t *testing.T, dests ...backup.Destination) *lease.Lease {
	t.Helper()
	l, err := lease.Acquire(context.Background(), dests, target, "prune", lease.Options{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l
}

func run(t *testing.T, dests []backup.Destination, policy *config.Retention, now time.Time, dryRun bool) (*prune.Report, error) {
	t.Helper()
	var held *lease.Lease
	if !dryRun {
		held = hold(t, dests...)
		defer held.Release(context.Background())
	}
	return prune.Target(context.Background(), nil, target, policy, dests, held, now, dryRun)
}

func without(ids []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(drop, id) })
}

func TestPruneDeletesWhatThePlanSays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		d := backup.Destination{Name: "d", Destination: newDest(t)}
		var ids []string
		for day := range 12 {
			var outcomes []verify.Outcome
			switch {
			case day == 5:
				outcomes = []verify.Outcome{verify.Pass, verify.Error} // an error has no verdict
			case day > 5 && day < 9:
				outcomes = []verify.Outcome{verify.Pass, verify.Fail} // went bad
			case day >= 9:
				outcomes = []verify.Outcome{verify.Fail}
			}
			ids = append(ids, store(t, d, day, outcomes...))
		}
		debris := storeDebris(t, d, 12)
		policy := &config.Retention{KeepLast: 2}
		now := later()

		// Dry run: the plan, nothing changed.
		before := allKeys(t, d)
		rep, err := run(t, []backup.Destination{d}, policy, now, true)
		if err != nil {
			t.Fatal(err)
		}
		wantDeleted := slices.Concat(ids[:5], ids[6:10]) // oldest first
		dr := rep.Destinations[0]
		if !slices.Equal(dr.Deleted, wantDeleted) || !slices.Equal(dr.Debris, []string{debris}) {
			t.Fatalf("dry run: deleted %v debris %v\nwant %v, [%s]", dr.Deleted, dr.Debris, wantDeleted, debris)
		}
		if got := dr.Plan[6]; got.ID != ids[5] || fmt.Sprint(got.Reasons) != "["+retention.ReasonNewestVerified+"]" {
			t.Errorf("plan for the newest verified: %+v", got)
		}
		if after := allKeys(t, d); !slices.Equal(before, after) {
			t.Fatalf("dry run changed the destination:\nbefore %v\nafter  %v", before, after)
		}

		rep, err = run(t, []backup.Destination{d}, policy, now, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Destinations[0].Deleted, wantDeleted) {
			t.Errorf("deleted %v, want %v", rep.Destinations[0].Deleted, wantDeleted)
		}
		want := []string{ids[5], ids[10], ids[11]}
		if got := listed(t, d); !slices.Equal(got, want) {
			t.Errorf("left %v, want %v", got, want)
		}
		// Deleted backups are gone entirely: records too.
		for _, k := range allKeys(t, d) {
			if !strings.Contains(k, ids[5]) && !strings.Contains(k, ids[10]) && !strings.Contains(k, ids[11]) {
				t.Errorf("left behind: %s", k)
			}
		}
	})
}

// faulty wraps a destination with injected failures.
type faulty struct {
	destination.Destination
	listErr       error        // List of the target fails
	getErr        error        // Get of verification records fails
	deletesBefore int64        // Deletes that succeed before every other one fails
	deletes       atomic.Int64 //
	deleted       []string     // keys deleted, in order
	failOn        func(string) bool
}

var errInjected = errors.New("injected failure")

func (f *faulty) List(ctx context.Context, prefix string) ([]destination.Object, error) {
	if f.listErr != nil && prefix == target+"/" {
		return nil, f.listErr
	}
	return f.Destination.List(ctx, prefix)
}

func (f *faulty) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if f.getErr != nil && strings.Contains(key, "/verify-") {
		return nil, f.getErr
	}
	return f.Destination.Get(ctx, key)
}

func (f *faulty) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, target+"/"+lease.Dir+"/") {
		return f.Destination.Delete(ctx, key)
	}
	if f.deletesBefore >= 0 && f.deletes.Add(1) > f.deletesBefore {
		return errInjected
	}
	f.deleted = append(f.deleted, key)
	return f.Destination.Delete(ctx, key)
}

func newFaulty(d destination.Destination) *faulty { return &faulty{Destination: d, deletesBefore: -1} }

// A destination whose listing fails is not touched, and says why; the
// other destination is pruned.
func TestListingErrorDeletesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		bad := newFaulty(newDest(t))
		good := newDest(t)
		for day := range 6 {
			store(t, bad, day, verify.Pass)
			store(t, good, day, verify.Pass)
		}
		bad.listErr = errInjected
		dests := []backup.Destination{{Name: "bad", Destination: bad}, {Name: "good", Destination: good}}
		rep, err := run(t, dests, &config.Retention{KeepLast: 1}, time.Now(), false)
		if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "destination bad: listing failed, nothing pruned") {
			t.Fatalf("error = %v", err)
		}
		if bad.deletes.Load() != 0 || rep.Destinations[0].Error == "" || len(rep.Destinations[0].Deleted) != 0 {
			t.Errorf("failed listing: %d deletes, report %+v", bad.deletes.Load(), rep.Destinations[0])
		}
		if got := len(listed(t, good)); got != 1 || len(rep.Destinations[1].Deleted) != 5 {
			t.Errorf("good destination: %d left, report %+v", got, rep.Destinations[1])
		}
	})
}

// When the records that tell which backup is the newest verified cannot be
// read, nothing is pruned on that destination.
func TestUnreadableRecordDeletesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		d := newFaulty(newDest(t))
		for day := range 5 {
			store(t, d, day, verify.Pass)
		}
		d.getErr = errInjected
		_, err := run(t, []backup.Destination{{Name: "d", Destination: d}}, &config.Retention{KeepLast: 1}, time.Now(), false)
		if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "nothing pruned") {
			t.Fatalf("error = %v", err)
		}
		if d.deletes.Load() != 0 || len(listed(t, d)) != 5 {
			t.Errorf("%d deletes, %d backups left", d.deletes.Load(), len(listed(t, d)))
		}
	})
}

// A prune that dies after any number of deletions never leaves a listed
// backup with missing parts; the next run finishes the job.
func TestCrashMidDeletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		const objectsPerBackup = 3 // manifest, artifact, one record
		for crashAfter := range 3*objectsPerBackup + 1 {
			d := newFaulty(newDest(t))
			var ids []string
			for day := range 5 {
				ids = append(ids, store(t, d, day, verify.Pass))
			}
			dests := []backup.Destination{{Name: "d", Destination: d}}
			policy := &config.Retention{KeepLast: 2}
			d.deletesBefore = int64(crashAfter)
			_, err := run(t, dests, policy, time.Now(), false)
			if crashAfter < 3*objectsPerBackup && !errors.Is(err, errInjected) {
				t.Fatalf("crash after %d deletes: error %v", crashAfter, err)
			}
			// The manifest is always the first thing of a backup to go.
			for i, k := range d.deleted {
				if (i%objectsPerBackup == 0) != strings.HasSuffix(k, "/"+catalog.ManifestName) {
					t.Fatalf("crash after %d: deletion order %v", crashAfter, d.deleted)
				}
			}
			listed(t, d) // every listed backup is whole

			// The rerun, once the leftovers are older than the grace period.
			d.deletesBefore = -1
			rep, err := run(t, dests, policy, later(), false)
			if err != nil {
				t.Fatalf("crash after %d: rerun: %v", crashAfter, err)
			}
			if got := listed(t, d); !slices.Equal(got, ids[3:]) {
				t.Fatalf("crash after %d: rerun left %v, want %v", crashAfter, got, ids[3:])
			}
			if keys := allKeys(t, d); len(keys) != 2*objectsPerBackup {
				t.Fatalf("crash after %d: debris left: %v (report %+v)", crashAfter, keys, rep.Destinations[0])
			}
		}
	})
}

// After ten failed backups in a row (nothing committed, only debris), and
// ten committed ones that fail verification, prune keeps the last good one.
func TestTenFailedBackupsKeepLastGood(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		d := backup.Destination{Name: "d", Destination: newDest(t)}
		policy := &config.Retention{KeepLast: 3}
		var good []string
		for day := range 10 {
			good = append(good, store(t, d, day, verify.Pass))
		}
		lastGood := good[len(good)-1]
		// Ten failed attempts, a prune after each.
		for day := 10; day < 20; day++ {
			storeDebris(t, d, day)
			if _, err := run(t, []backup.Destination{d}, policy, later(), false); err != nil {
				t.Fatal(err)
			}
			if got := listed(t, d); !slices.Equal(got, good[7:]) {
				t.Fatalf("day %d: after failed backups %v are left, want %v", day, got, good[7:])
			}
		}
		// Ten committed backups whose verification fails.
		var bad []string
		for day := 20; day < 30; day++ {
			bad = append(bad, store(t, d, day, verify.Fail))
			if _, err := run(t, []backup.Destination{d}, policy, later(), false); err != nil {
				t.Fatal(err)
			}
			if got := listed(t, d); !slices.Contains(got, lastGood) {
				t.Fatalf("day %d: the last good backup %s was deleted; left %v", day, lastGood, got)
			}
		}
		if got, want := listed(t, d), append([]string{lastGood}, bad[7:]...); !slices.Equal(got, want) {
			t.Errorf("left %v, want %v", got, want)
		}
		if keys := allKeys(t, d); len(keys) != 4*3 {
			t.Errorf("debris of the failed backups not removed: %v", keys)
		}
	})
}

// A backup dated in the future (clock skew, or planted) is set aside: kept,
// counted by no rule, and the rest of the destination is pruned around it.
// So is one whose manifest's times disagree with its id.
func TestFutureBackupIsPlannedAround(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		d := newFaulty(newDest(t))
		var ids []string
		for day := range 5 {
			ids = append(ids, store(t, d, day, verify.Pass))
		}
		now := day0.AddDate(0, 0, 5)
		future := store(t, d, 6) // tomorrow
		// A copy of day 1 relabelled as day 5: its manifest still says day 1.
		ctx := context.Background()
		m, err := catalog.ReadManifest(ctx, d, target, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		relabelled := catalog.NewID(now.Add(-time.Hour))
		for _, a := range m.Artifacts {
			rc, err := d.Get(ctx, catalog.Key(target, ids[1], a.Name))
			if err != nil {
				t.Fatal(err)
			}
			err = d.Put(ctx, catalog.Key(target, relabelled, a.Name), rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		m.ID = relabelled
		if err := catalog.WriteManifest(ctx, d, m); err != nil {
			t.Fatal(err)
		}
		rep, err := run(t, []backup.Destination{{Name: "d", Destination: d}}, &config.Retention{KeepLast: 1}, now, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rep.Destinations[0].Deleted, []string{ids[0], ids[1], ids[2], ids[3]}; !slices.Equal(got, want) {
			t.Errorf("deleted %v, want %v", got, want)
		}
		for _, dec := range rep.Destinations[0].Plan {
			if dec.ID == future || dec.ID == relabelled {
				if !dec.Keep || !strings.HasPrefix(dec.Reasons[0], retention.ReasonSuspect) {
					t.Errorf("%s: %+v", dec.ID, dec)
				}
			}
		}
		if got, want := listed(t, d), []string{ids[4], relabelled, future}; !slices.Equal(got, want) {
			t.Errorf("left %v, want %v", got, want)
		}
	})
}

// Deleting needs the lease; without it on a destination, that destination
// is left alone. Without a policy only debris goes.
func TestLeaseAndNoPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newDest func(t *testing.T) destination.Destination) {
		d := backup.Destination{Name: "d", Destination: newDest(t)}
		other := backup.Destination{Name: "other", Destination: newDest(t)}
		for day := range 3 {
			store(t, d, day, verify.Pass)
			store(t, other, day, verify.Pass)
		}
		now := later()
		ctx := context.Background()
		if _, err := prune.Target(ctx, nil, target, &config.Retention{KeepLast: 1}, []backup.Destination{d}, nil, now, false); err == nil {
			t.Fatal("pruned without a lease")
		}
		held := hold(t, d) // not on other
		rep, err := prune.Target(ctx, nil, target, &config.Retention{KeepLast: 1}, []backup.Destination{d, other}, held, now, false)
		if err == nil || !strings.Contains(err.Error(), "destination other: nothing pruned: no lease on other") {
			t.Fatalf("error = %v", err)
		}
		if len(listed(t, other)) != 3 || len(listed(t, d)) != 1 {
			t.Errorf("left %d on other (want 3), %d on d (want 1); report %+v", len(listed(t, other)), len(listed(t, d)), rep)
		}
		held.Release(ctx)

		store(t, d, 3, verify.Pass)
		debris := storeDebris(t, d, 4)
		rep, err = run(t, []backup.Destination{d}, nil, now, false)
		if err != nil {
			t.Fatal(err)
		}
		dr := rep.Destinations[0]
		if len(listed(t, d)) != 2 || len(dr.Deleted) != 0 || !slices.Equal(dr.Debris, []string{debris}) || dr.Plan[0].Reasons[0] != prune.ReasonNoPolicy {
			t.Errorf("no policy: report %+v", dr)
		}
	})
}
