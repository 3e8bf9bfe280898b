package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/verify"
)

// configDests opens the destinations of a config file as the CLI does.
func configDests(t *testing.T, path string) map[string]backup.Destination {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]backup.Destination{}
	for name, dc := range cfg.Destinations {
		d, err := openDestination(context.Background(), dc)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = backup.Destination{Name: name, Destination: d}
	}
	return out
}

// storeBackup writes a committed backup of orders created at the given time
// to each destination, with a passing verification record on those named in
// verifiedOn.
func storeBackup(t *testing.T, dests []backup.Destination, created time.Time, verifiedOn ...string) string {
	t.Helper()
	ctx := context.Background()
	id := catalog.NewID(created)
	data := []byte("not really a dump " + id)
	sum := sha256.Sum256(data)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: id, Target: "orders", Engine: "postgres",
		Start: created, End: created.Add(time.Minute), Compression: "zstd",
		Artifacts: []catalog.Artifact{{Name: "dump.pgdump.zst", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}}}
	for _, d := range dests {
		if err := d.Put(ctx, catalog.Key("orders", id, "dump.pgdump.zst"), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(verifiedOn, d.Name) {
			rec := verify.Record{Format: verify.RecordFormat, Target: "orders", Destination: d.Name, BackupID: id, Outcome: verify.Pass, Started: created.Add(time.Hour)}
			if err := catalog.WriteRecord(ctx, d, "orders", id, catalog.RecordName(rec.Started), rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := catalog.WriteManifest(ctx, d, m); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

type pruneDoc struct {
	Prune []struct {
		Target       string
		DryRun       bool `json:"dry_run"`
		Error        string
		Destinations []struct {
			Name string
			Plan []struct {
				ID      string
				Keep    bool
				Reasons []string
			}
			Deleted []string
			Error   string
		}
	}
}

func countListed(t *testing.T, cfg string) map[string]int {
	t.Helper()
	r := runCLI(t, context.Background(), "list", "-c", cfg, "--json")
	n := map[string]int{}
	for _, b := range decode[listDoc](t, r.stdout).Backups {
		n[b.Destination]++
	}
	return n
}

func TestPruneCommand(t *testing.T) {
	ctx := context.Background()
	cfg := e2eConfigWith(t, "postgres://app@127.0.0.1:1/orders", testenv.S3(t).SecretKey, "", "    retention: {keep_last: 2}")
	dests := configDests(t, cfg)
	start := time.Now().UTC().Add(-10 * 24 * time.Hour)
	both := []backup.Destination{dests["local"], dests["offsite"]}
	var ids []string
	for day := range 5 {
		verifiedOn := ""
		if day == 0 {
			verifiedOn = "local"
		}
		ids = append(ids, storeBackup(t, both, start.AddDate(0, 0, day), verifiedOn))
	}

	// Dry run: the plan, nothing deleted.
	r := runCLI(t, ctx, "prune", "-c", cfg, "--dry-run", "--json")
	if r.code != ExitOK {
		t.Fatalf("prune --dry-run exit %d: %s", r.code, r.stderr)
	}
	doc := decode[pruneDoc](t, r.stdout)
	if len(doc.Prune) != 1 || !doc.Prune[0].DryRun || len(doc.Prune[0].Destinations) != 2 {
		t.Fatalf("dry run document: %+v", doc)
	}
	for _, d := range doc.Prune[0].Destinations {
		// Newest two by keep_last; the oldest is the only verified one on local.
		wantDeleted := 3
		if d.Name == "local" {
			wantDeleted = 2
		}
		if len(d.Plan) != 5 || len(d.Deleted) != wantDeleted || d.Error != "" {
			t.Errorf("%s: dry run plan %+v", d.Name, d)
		}
	}
	if n := countListed(t, cfg); n["local"] != 5 || n["offsite"] != 5 {
		t.Fatalf("dry run deleted backups: %v", n)
	}

	// Another process holds the lease: prune refuses and names it.
	other, err := lease.Acquire(ctx, []backup.Destination{dests["local"], dests["offsite"]}, "orders", "backup",
		lease.Options{Host: "other-host", PID: 777, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, ctx, "prune", "-c", cfg)
	if r.code != ExitError || !strings.Contains(r.stderr, "prune orders: busy: backup by other-host (pid 777)") {
		t.Fatalf("prune while leased: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	other.Release(ctx)
	if n := countListed(t, cfg); n["local"] != 5 || n["offsite"] != 5 {
		t.Fatalf("prune refused, yet deleted: %v", n)
	}

	r = runCLI(t, ctx, "prune", "orders", "-c", cfg)
	if r.code != ExitOK {
		t.Fatalf("prune exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"orders on local: keep 3, deleted 2",
		"orders on offsite: keep 2, deleted 3",
		ids[4] + "  keep          last 1, newest committed\n",
		ids[0] + "  keep          newest verified\n",
		ids[1] + "  deleted\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("prune output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, `"msg":"deleted backup"`) || !strings.Contains(r.stderr, `"reasons":"last 2"`) {
		t.Errorf("plan not logged:\n%s", r.stderr)
	}
	if n := countListed(t, cfg); n["local"] != 3 || n["offsite"] != 2 {
		t.Fatalf("after prune: %v", n)
	}

	// A backup dated tomorrow (clock skew, or planted) is set aside: kept,
	// counted by no rule, and the rest is pruned around it (issue 16).
	future := storeBackup(t, both[:1], time.Now().Add(24*time.Hour))
	r = runCLI(t, ctx, "prune", "-c", cfg)
	if r.code != ExitOK || !strings.Contains(r.stdout, future+"  keep          dates cannot be believed, never pruned: dated ") ||
		!strings.Contains(r.stdout, ids[4]+"  keep          last 1, newest committed\n") {
		t.Fatalf("clock skew: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// A destination that cannot be reached is not pruned and fails the command;
// the other is pruned. The S3 secret, wrong here, appears nowhere. (A
// listing that fails once the lease is taken: prune.TestListingErrorDeletesNothing.)
func TestPruneUnreachableDestination(t *testing.T) {
	ctx := context.Background()
	cfg := e2eConfigWith(t, "postgres://app@127.0.0.1:1/orders", sentinel, "", "    retention: {keep_last: 1}")
	dests := configDests(t, cfg)
	for day := range 3 {
		storeBackup(t, []backup.Destination{dests["local"]}, time.Now().UTC().AddDate(0, 0, day-5))
	}
	r := runCLI(t, ctx, "prune", "-c", cfg, "--json")
	doc := decode[pruneDoc](t, r.stdout)
	if r.code != ExitError || len(doc.Prune) != 1 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, d := range doc.Prune[0].Destinations {
		switch d.Name {
		case "local":
			if len(d.Deleted) != 2 || d.Error != "" {
				t.Errorf("local: %+v", d)
			}
		case "offsite":
			if len(d.Deleted) != 0 || !strings.Contains(d.Error, "no lease on offsite") {
				t.Errorf("offsite: %+v", d)
			}
		}
	}
	if n := countListed(t, cfg); n["local"] != 1 {
		t.Errorf("local after prune: %v", n)
	}
}
