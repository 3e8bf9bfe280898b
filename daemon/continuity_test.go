package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/verify"
)

func continuityRecord(dest string, ended time.Time, outcome verify.Outcome, msg string) *verify.Record {
	r := &verify.Record{Target: "orders", Destination: dest, BackupID: "20261202T020000Z-bbbbbbbb", Ended: ended,
		Checks: []verify.CheckResult{{Name: "restore", Kind: verify.KindBuiltin, Outcome: verify.Pass}}}
	if outcome != "" {
		r.Checks = append(r.Checks, verify.CheckResult{Name: verify.CheckContinuity, Kind: verify.KindBuiltin, Outcome: outcome, Message: msg})
		r.Continuity = &verify.ContinuityReport{Baseline: "20261201T020000Z-aaaaaaaa",
			Result: continuity.Result{BiggestDrop: &continuity.Drop{Table: "public.order_items", From: 15000, To: 1500, Percent: 90}}}
	}
	return r
}

func TestContinuityStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	drop := "public.order_items: 15000 -> 1500 rows (-90%) since 20261201T020000Z-aaaaaaaa"
	cases := []struct {
		name        string
		records     []*verify.Record
		passed, ok  bool
		wantOutcome verify.Outcome
	}{
		{"never checked: old records", []*verify.Record{continuityRecord("local", now, "", "")}, false, false, ""},
		{"pass", []*verify.Record{continuityRecord("local", now, verify.Pass, "")}, true, true, verify.Pass},
		{"one destination fails", []*verify.Record{continuityRecord("local", now, verify.Pass, ""),
			continuityRecord("offsite", now.Add(-time.Hour), verify.Fail, drop)}, false, true, verify.Fail},
		{"an error says nothing", []*verify.Record{continuityRecord("local", now, verify.Error, "unreadable")}, false, false, verify.Error},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Catalog{LastVerifications: tc.records}
			if passed, ok := c.ContinuityPassed(); passed != tc.passed || ok != tc.ok {
				t.Errorf("ContinuityPassed = %v, %v; want %v, %v", passed, ok, tc.passed, tc.ok)
			}
			cs := c.continuityStatus()
			if tc.wantOutcome == "" {
				if cs != nil {
					t.Errorf("status %+v, want none", cs)
				}
				return
			}
			if cs == nil || cs.Outcome != tc.wantOutcome || cs.BiggestDrop == nil || cs.Baseline == "" {
				t.Fatalf("status %+v, want %s with the biggest drop", cs, tc.wantOutcome)
			}
			if tc.wantOutcome == verify.Fail {
				s := &TargetStatus{Catalog: *c, Continuity: cs}
				if h, problems := health(s, nil); h != Failing || !strings.Contains(strings.Join(problems, "; "), "continuity failed: "+drop) {
					t.Errorf("health %s %v", h, problems)
				}
			}
		})
	}

	// An accepted backup in the history is shown.
	a := &catalog.Acceptance{BackupID: "20261202T020000Z-bbbbbbbb", By: "ann@ops", At: now, Reason: "archive job"}
	c := &Catalog{History: []Point{{ID: "x"}, {ID: a.BackupID, Accepted: a}, {ID: "z"}}}
	if cs := c.continuityStatus(); cs == nil || cs.Accepted != a {
		t.Errorf("status %+v, want the acceptance", cs)
	}
}
