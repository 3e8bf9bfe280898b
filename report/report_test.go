package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/destination/local"
	"github.com/backproof/backproof/report"
	"github.com/backproof/backproof/sign"
	"github.com/backproof/backproof/verify"
)

func TestReport(t *testing.T) {
	ctx := context.Background()
	raw, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := sign.Generate()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := sign.ParsePrivateKey(priv)
	trust, _ := sign.NewTrust([]string{pub})
	st := &sign.Store{Destination: raw, Name: "local", Policy: sign.Policy{Signer: signer, Trust: trust}}

	now := time.Now().UTC()
	created := now.Add(-50 * time.Hour)
	id := catalog.NewID(created)
	m := &catalog.Manifest{Format: catalog.FormatVersion, ID: id, Target: "orders", Engine: "postgres", Start: created,
		End: created.Add(time.Minute), Compression: "zstd", Artifacts: []catalog.Artifact{{Name: "dump", Size: 1, SHA256: strings.Repeat("0", 64)}}}
	if err := catalog.WriteManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	write := func(d interface{}, started time.Time, outcome verify.Outcome, restore float64) {
		rec := verify.Record{Format: 1, Target: "orders", Destination: "local", BackupID: id, BackupCreated: &created,
			Outcome: outcome, Started: started, Ended: started.Add(time.Minute), RestoreSeconds: restore}
		if outcome == verify.Fail {
			rec.Reason = "tables: table public.orders has 9 rows, the dump recorded 10"
		}
		dest := st
		if d == nil {
			dest = &sign.Store{Destination: raw, Name: "local"} // unsigned
		}
		if err := catalog.WriteRecord(ctx, dest, "orders", id, catalog.RecordName(started), rec); err != nil {
			t.Fatal(err)
		}
	}
	write(st, now.Add(-100*24*time.Hour), verify.Pass, 1) // before the period
	write(st, now.Add(-48*time.Hour), verify.Pass, 3.5)
	write(st, now.Add(-24*time.Hour), verify.Fail, 2)
	write(nil, now.Add(-time.Hour), verify.Pass, 0.1) // forged

	r, err := report.Build(ctx, []string{"orders"}, map[string][]report.Source{"orders": {{Name: "local", Store: raw}}},
		report.Options{Since: now.Add(-90 * 24 * time.Hour), Now: now, Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	tg := r.Targets[0]
	if s := tg.Summary; s.Verifications != 3 || s.Pass != 1 || s.Fail != 1 || s.Authentic != 2 || s.NotAuthentic != 1 || s.MaxBackupAgeSeconds != 2*3600 {
		t.Errorf("summary %+v", s)
	}
	v := tg.Verifications
	if !v[0].Authentic || v[0].RestoreSeconds != 3.5 || v[0].BackupAgeSeconds != 2*3600 || !strings.Contains(v[0].Receipt, pub) {
		t.Errorf("first: %+v", v[0])
	}
	if v[2].Authentic || !strings.Contains(v[2].Receipt, "unsigned") {
		t.Errorf("forged: %+v", v[2])
	}
	for _, format := range report.Formats {
		var b bytes.Buffer
		if err := report.Render(&b, r, format); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{id, "NOT authentic", "has 9 rows", "3.5s", "2h0m0s"} {
			if format == "json" && (want == "3.5s" || want == "2h0m0s" || want == "NOT authentic") {
				continue
			}
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", format, want, out)
			}
		}
		if format == "json" && !json.Valid(b.Bytes()) {
			t.Errorf("invalid JSON:\n%s", out)
		}
		if format == "html" && strings.Contains(out, "<script") {
			t.Errorf("html: %s", out)
		}
	}
}
