package verify

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/engine"
)

func TestCompareTables(t *testing.T) {
	want := []engine.TableStats{{Schema: "public", Name: "orders", Rows: 10}, {Schema: "Billing", Name: "Invoice Lines", Rows: 3}, {Schema: "public", Name: "gone", Rows: 0}}
	got := []engine.TableStats{{Schema: "public", Name: "orders", Rows: 9}, {Schema: "Billing", Name: "Invoice Lines", Rows: 3}, {Schema: "public", Name: "extra", Rows: 5}}
	observed, problems := compareTables(want, got, config.Tolerance{}, engine.TablesRows)
	wantProblems := []string{"table public.orders has 9 rows, the dump recorded 10", "table public.gone missing"}
	if strings.Join(problems, "|") != strings.Join(wantProblems, "|") {
		t.Errorf("problems %q, want %q", problems, wantProblems)
	}
	if observed != "3 tables, 12 rows" {
		t.Errorf("observed %q", observed)
	}
	if _, problems := compareTables(want[:2], []engine.TableStats{want[1], want[0]}, config.Tolerance{}, engine.TablesRows); len(problems) != 0 {
		t.Errorf("identical tables in another order: %q", problems)
	}
}

// A tolerance allows a difference either way, and a table missing from the
// copy when its count is within the tolerance (Redis: an emptied database).
func TestCompareTablesTolerance(t *testing.T) {
	want := []engine.TableStats{{Schema: "redis", Name: "db0", Rows: 1000}, {Schema: "redis", Name: "db1", Rows: 2}, {Schema: "redis", Name: "db2", Rows: 50}}
	got := []engine.TableStats{{Schema: "redis", Name: "db0", Rows: 1010}, {Schema: "redis", Name: "db2", Rows: 45}}
	for _, tc := range []struct {
		tol  config.Tolerance
		want string
	}{
		{config.Tolerance{N: 10}, ""},
		{config.Tolerance{N: 9}, "table redis.db0 has 1010 rows, the dump recorded 1000 (tolerance 9: ±9)"},
		{config.Tolerance{N: 1}, "table redis.db0 has 1010 rows, the dump recorded 1000 (tolerance 1: ±1)|table redis.db1 missing|table redis.db2 has 45 rows, the dump recorded 50 (tolerance 1: ±1)"},
		{config.Tolerance{Percent: 10}, "table redis.db1 missing"},
		{config.Tolerance{}, "table redis.db0 has 1010 rows, the dump recorded 1000|table redis.db1 missing|table redis.db2 has 45 rows, the dump recorded 50"},
	} {
		if _, problems := compareTables(want, got, tc.tol, engine.TablesRows); strings.Join(problems, "|") != tc.want {
			t.Errorf("tolerance %s: %q, want %q", tc.tol, problems, tc.want)
		}
	}
}

func TestCompareObjects(t *testing.T) {
	want := map[string][]string{"index": {"public.a_idx", "public.b_idx"}, "view": {"public.v"}}
	got := map[string][]string{"index": {"public.b_idx", "public.a_idx", "public.new_idx"}, "function": {"public.f()"}}
	observed, problems := compareObjects(want, got)
	if strings.Join(problems, "|") != "view public.v missing" || observed != "3 objects" {
		t.Errorf("observed %q problems %q", observed, problems)
	}
}

func TestSummarizeBoundsTheMessage(t *testing.T) {
	var ps []string
	for range 8 {
		ps = append(ps, "p")
	}
	if got := summarize(ps); got != "p; p; p; p; p; and 3 more" {
		t.Errorf("got %q", got)
	}
}

func TestEvaluate(t *testing.T) {
	created := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	at := func(d time.Duration) engine.Value {
		tm := created.Add(-d)
		return engine.Value{Text: tm.Format(time.RFC3339), Time: &tm}
	}
	cases := []struct {
		name  string
		check config.Check
		val   engine.Value
		want  Outcome
		msg   string
	}{
		{"greater holds", config.Check{Expect: "> 0"}, engine.Value{Text: "12"}, Pass, ""},
		{"greater fails", config.Check{Expect: "> 0"}, engine.Value{Text: "0"}, Fail, "got 0, want > 0"},
		{"equal numeric", config.Check{Expect: "= 3"}, engine.Value{Text: "3.0"}, Pass, ""},
		{"not a number", config.Check{Expect: ">= 1"}, engine.Value{Text: "lots"}, Fail, "expects a number"},
		{"null", config.Check{Expect: "> 0"}, engine.Value{Null: true}, Fail, "NULL"},
		{"true holds", config.Check{Expect: "true"}, engine.Value{Text: "true"}, Pass, ""},
		{"true fails", config.Check{Expect: "true"}, engine.Value{Text: "false"}, Fail, "want true"},
		{"fresh", config.Check{MaxAge: 26 * time.Hour}, at(25 * time.Hour), Pass, ""},
		{"newer than the backup", config.Check{MaxAge: time.Hour}, at(-time.Hour), Pass, ""},
		{"stale", config.Check{MaxAge: 26 * time.Hour}, at(27 * time.Hour), Fail, "27h0m0s older than the backup"},
		{"max_age of NULL", config.Check{MaxAge: time.Hour}, engine.Value{Null: true}, Fail, "NULL"},
		{"max_age of a number", config.Check{MaxAge: time.Hour}, engine.Value{Text: "7"}, Fail, "want a timestamp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, _, msg := evaluate(tc.check, tc.val, created)
			if got != tc.want || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q, want %s containing %q", got, msg, tc.want, tc.msg)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	cases := []struct {
		outcomes []Outcome
		want     Outcome
	}{
		{[]Outcome{Pass, Pass, Skipped}, Pass},
		{[]Outcome{Pass, Error}, Error},
		{[]Outcome{Pass, Error, Fail}, Fail}, // a proven bad backup outranks a check that could not run
		{[]Outcome{Fail, Pass}, Fail},
		{nil, Pass},
	}
	for _, tc := range cases {
		r := &Record{}
		for i, o := range tc.outcomes {
			r.Checks = append(r.Checks, CheckResult{Name: string(rune('a' + i)), Outcome: o, Message: "m"})
		}
		r.settle()
		if r.Outcome != tc.want {
			t.Errorf("%v: got %s, want %s", tc.outcomes, r.Outcome, tc.want)
		}
	}
}

func TestPick(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var backups []catalog.Backup
	for d := 10; d >= 0; d-- {
		backups = append(backups, catalog.Backup{ID: catalog.NewID(now.Add(-time.Duration(d) * 24 * time.Hour))})
	}
	if b := Latest(backups, now); b.ID != backups[10].ID {
		t.Errorf("latest picked %s", b.ID)
	}
	if Latest(nil, now) != nil || Random(time.Hour, rand.New(rand.NewPCG(1, 2)))(nil, now) != nil {
		t.Error("picked from nothing")
	}
	pick := Random(3*24*time.Hour, rand.New(rand.NewPCG(1, 2)))
	seen := map[string]int{}
	for range 400 {
		seen[pick(backups, now).ID]++
	}
	if len(seen) != 4 {
		t.Errorf("random within 3 days picked %d distinct backups, want the 4 in the window: %v", len(seen), seen)
	}
	for id := range seen {
		if tm, _ := catalog.IDTime(id); now.Sub(tm) > 3*24*time.Hour {
			t.Errorf("picked %s outside the window", id)
		}
	}
	// Nothing recent: the newest.
	if b := Random(time.Hour, rand.New(rand.NewPCG(1, 2)))(backups[:5], now); b.ID != backups[4].ID {
		t.Errorf("picked %s, want the newest", b.ID)
	}
}

func TestMajorVersion(t *testing.T) {
	for in, want := range map[string]string{"15.10 (Debian 15.10-0+deb12u1)": "15", "7.0.15": "7", "16beta1": "16", "": "", "v7": ""} {
		if got := majorVersion(in); got != want {
			t.Errorf("majorVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// Records written before the integrity step had its name call it amcheck.
func TestCheckName(t *testing.T) {
	if CheckName("amcheck") != CheckIntegrity || CheckName(CheckIntegrity) != CheckIntegrity || CheckName("tables") != "tables" {
		t.Error("CheckName does not read the old name as integrity")
	}
}

// Messages use the engine's words.
func TestCompareTablesWords(t *testing.T) {
	want := []engine.TableStats{{Schema: "redis", Name: "db0", Rows: 5}, {Name: "db1", Rows: 2}}
	got := []engine.TableStats{{Schema: "redis", Name: "db0", Rows: 4}}
	observed, problems := compareTables(want, got, config.Tolerance{}, engine.DatabasesKeys)
	if observed != "2 databases, 4 keys" || strings.Join(problems, "|") != "database redis.db0 has 4 keys, the dump recorded 5|database db1 missing" {
		t.Errorf("observed %q, problems %q", observed, problems)
	}
}

// Records of earlier versions have no image_digest and still read; a digest
// is written only when the sandbox's image has one.
func TestRecordImageDigest(t *testing.T) {
	old := `{"format":1,"target":"orders","outcome":"pass","started":"2026-11-22T02:00:00Z","ended":"2026-11-22T02:01:00Z","duration_seconds":60,"restore_duration_seconds":5,"image":"postgres:15","image_id":"sha256:ab","checks":[]}`
	var rec Record
	if err := json.Unmarshal([]byte(old), &rec); err != nil || rec.ImageID != "sha256:ab" || rec.ImageDigest != "" {
		t.Fatalf("old record: %+v, %v", rec, err)
	}
	rec.ImageDigest = "postgres@sha256:cd"
	data, err := json.Marshal(&rec)
	if err != nil || !strings.Contains(string(data), `"image_digest":"postgres@sha256:cd"`) {
		t.Errorf("record with a digest: %s %v", data, err)
	}
	rec.ImageDigest = ""
	if data, _ := json.Marshal(&rec); strings.Contains(string(data), "image_digest") {
		t.Errorf("record without a digest writes one: %s", data)
	}
}
