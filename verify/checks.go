package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/engine"
)

// maxListed bounds how many mismatches a message names.
const maxListed = 5

// compare checks the restored copy against the statistics the dump
// recorded: every table with exactly its row count, every schema object.
func (r *run) compare(ctx context.Context, cp engine.Copy, want *engine.SourceStats) bool {
	start := r.v.Now()
	got, err := cp.Observe(ctx)
	if err != nil {
		r.stepErr(ctx, CheckTables, start, err, false)
		return false
	}
	observed, problems := compareTables(want.Tables, got.Tables, r.req.Tolerance, r.req.Words.Or())
	if len(problems) > 0 {
		r.step(CheckTables, start, Fail, observed, summarize(problems))
	} else {
		// What the dump noted about its copy (a table that is not
		// point-in-time) belongs next to the counts that passed.
		r.step(CheckTables, start, Pass, observed, strings.Join(want.Notes, "; "))
	}

	start = r.v.Now()
	if len(want.Objects) == 0 {
		r.step(CheckSchema, start, Skipped, "", "the manifest records no schema objects")
		return true
	}
	observed, problems = compareObjects(want.Objects, got.Objects)
	if len(problems) > 0 {
		r.step(CheckSchema, start, Fail, observed, summarize(problems))
	} else {
		r.step(CheckSchema, start, Pass, observed, "")
	}
	return true
}

// compareTables lists every recorded table that is missing from the copy or
// holds a different number of rows than tol allows.
func compareTables(want, got []engine.TableStats, tol config.Tolerance, w engine.Words) (observed string, problems []string) {
	type key struct{ schema, name string }
	have := make(map[key]int64, len(got))
	for _, t := range got {
		have[key{t.Schema, t.Name}] = t.Rows
	}
	var rows int64
	for _, t := range want {
		n, ok := have[key{t.Schema, t.Name}]
		allowed := tol.Of(t.Rows)
		switch {
		case !ok && (allowed == 0 || t.Rows > allowed):
			problems = append(problems, fmt.Sprintf("%s %s missing", w.Container, qualified(t)))
		case ok && (n-t.Rows > allowed || t.Rows-n > allowed):
			msg := fmt.Sprintf("%s %s has %d %s, the dump recorded %d", w.Container, qualified(t), n, w.Items, t.Rows)
			if allowed > 0 {
				msg += fmt.Sprintf(" (tolerance %s: ±%d)", tol, allowed)
			}
			problems = append(problems, msg)
		}
		rows += n
	}
	return fmt.Sprintf("%d %s, %d %s", len(want), w.Containers, rows, w.Items), problems
}

// qualified names a container with its namespace when it has one.
func qualified(t engine.TableStats) string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// compareObjects lists every recorded schema object missing from the copy.
func compareObjects(want, got map[string][]string) (observed string, problems []string) {
	kinds := make([]string, 0, len(want))
	for k := range want {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	total := 0
	for _, kind := range kinds {
		have := make(map[string]bool, len(got[kind]))
		for _, n := range got[kind] {
			have[n] = true
		}
		for _, n := range want[kind] {
			total++
			if !have[n] {
				problems = append(problems, fmt.Sprintf("%s %s missing", kind, n))
			}
		}
	}
	return fmt.Sprintf("%d objects", total), problems
}

func summarize(problems []string) string {
	if len(problems) <= maxListed {
		return strings.Join(problems, "; ")
	}
	return strings.Join(problems[:maxListed], "; ") + fmt.Sprintf("; and %d more", len(problems)-maxListed)
}

// userChecks runs the target's configured checks against the copy.
func (r *run) userChecks(ctx context.Context, cp engine.Copy, m *catalog.Manifest) {
	for _, c := range r.req.Checks {
		start := r.v.Now()
		res := CheckResult{Name: c.Name, Kind: KindQuery}
		val, err := cp.Query(ctx, c.Query)
		switch {
		case err != nil && ctx.Err() != nil:
			res.Outcome, res.Message = Error, context.Cause(ctx).Error()
		case errors.Is(err, engine.ErrQuery):
			res.Outcome, res.Message = Fail, err.Error()
		case err != nil:
			res.Outcome, res.Message = Error, err.Error()
		default:
			res.Outcome, res.Observed, res.Expected, res.Message = evaluate(c, val, m.Start)
		}
		res.Seconds = round(r.v.Now().Sub(start).Seconds())
		r.rec.Checks = append(r.rec.Checks, res)
		if res.Outcome == Error {
			return // the copy is no longer reachable; later checks would say the same
		}
	}
}

// evaluate judges one query result: against expect, or as a timestamp no
// older than max_age at the backup's creation time.
func evaluate(c config.Check, val engine.Value, created time.Time) (outcome Outcome, observed, expected, msg string) {
	if val.Null {
		observed = "NULL"
	} else {
		observed = val.Text
	}
	if c.MaxAge > 0 {
		expected = "newer than " + created.Add(-c.MaxAge).UTC().Format(time.RFC3339) + " (max_age " + c.MaxAge.String() + ")"
		switch {
		case val.Null:
			return Fail, observed, expected, "query returned NULL, want a timestamp"
		case val.Time == nil:
			return Fail, observed, expected, fmt.Sprintf("query returned %q, want a timestamp or date", val.Text)
		}
		age := created.Sub(*val.Time)
		if age > c.MaxAge {
			return Fail, observed, expected, fmt.Sprintf("newest data is %s older than the backup, max_age is %s", age.Round(time.Second), c.MaxAge)
		}
		return Pass, observed, expected, ""
	}
	exp, err := config.ParseExpect(c.Expect)
	if err != nil { // config validation prevents this
		return Error, observed, c.Expect, err.Error()
	}
	expected = exp.String()
	if val.Null {
		return Fail, observed, expected, "query returned NULL"
	}
	ok, err := exp.Holds(val.Text)
	switch {
	case err != nil:
		return Fail, observed, expected, err.Error()
	case !ok:
		return Fail, observed, expected, fmt.Sprintf("got %s, want %s", observed, expected)
	}
	return Pass, observed, expected, ""
}

// randomPassword is the sandbox superuser's password: fresh for each
// sandbox, known only to this process.
func randomPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return hex.EncodeToString(b)
}
