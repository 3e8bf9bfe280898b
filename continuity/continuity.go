// Package continuity compares a backup with the last good backup of its
// target, to catch the damage a faithful backup copies: a table emptied by
// a DELETE without WHERE, a dropped table or index, a migration rolled back.
// Compare is a pure function of two manifests; finding the baseline is the
// verifier's job.
package continuity

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strings"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/engine"
)

// Policy says which changes since the baseline make a backup bad.
type Policy struct {
	// MaxDrop is the share of its baseline rows, in percent, a table may
	// lose.
	MaxDrop float64
	// MinRows: tables with fewer rows in the baseline are not checked for
	// drops. A table that vanished is reported whatever its size.
	MinRows int64
	// Ignore are table patterns (path.Match) matched against "name" and
	// "schema.name".
	Ignore []string
	// MissingIsEmpty counts a vanished table as emptied rather than gone:
	// Redis leaves empty databases out of its keyspace.
	MissingIsEmpty bool
	// Words name what the engine counts in messages; zero: tables and rows.
	Words engine.Words
}

// Drop is one table's loss of rows since the baseline.
type Drop struct {
	Table   string  `json:"table"`
	From    int64   `json:"from"`
	To      int64   `json:"to"`
	Percent float64 `json:"percent"` // of From, rounded to 0.1
}

func (d Drop) String() string { return d.format("rows") }

func (d Drop) format(items string) string {
	return fmt.Sprintf("%s: %d -> %d %s (-%s%%)", d.Table, d.From, d.To, items, formatPercent(d.Percent))
}

// Result is what the comparison found.
type Result struct {
	// Problems name every change that makes the backup bad, in a stable
	// order: vanished tables, drops (biggest first), vanished objects,
	// migrations gone back.
	Problems []string `json:"problems,omitempty"`
	// BiggestDrop is the largest loss among the tables checked for drops,
	// over the threshold or not; nil when none lost rows. Biggest is it in
	// words.
	BiggestDrop *Drop  `json:"biggest_drop,omitempty"`
	Biggest     string `json:"-"`
	// Tables and Objects are how many of the baseline's were compared.
	Tables  int `json:"tables"`
	Objects int `json:"objects"`
}

// OK reports whether nothing made the backup bad.
func (r Result) OK() bool { return len(r.Problems) == 0 }

// Compare compares cur with base, the last good backup of the same target.
func Compare(base, cur *catalog.Manifest, p Policy) Result {
	var res Result
	words := p.Words.Or()
	type key struct{ schema, name string }
	have := make(map[key]int64, len(cur.Source.Tables))
	for _, t := range cur.Source.Tables {
		have[key{t.Schema, t.Name}] = t.Rows
	}
	gone := map[string]bool{}
	var vanished []string
	var drops []Drop
	for _, t := range base.Source.Tables {
		name := qualified(t.Schema, t.Name)
		if p.ignored(t.Schema, t.Name) {
			continue
		}
		res.Tables++
		n, ok := have[key{t.Schema, t.Name}]
		if !ok && !p.MissingIsEmpty {
			gone[name] = true
			vanished = append(vanished, words.Container+" "+name+" gone")
			continue
		}
		if t.Rows < p.MinRows || t.Rows == 0 || n >= t.Rows {
			continue
		}
		d := Drop{Table: name, From: t.Rows, To: n, Percent: math.Round(float64(t.Rows-n)*1000/float64(t.Rows)) / 10}
		if res.BiggestDrop == nil || d.Percent > res.BiggestDrop.Percent {
			res.BiggestDrop = &d
		}
		if float64(t.Rows-n) > float64(t.Rows)*p.MaxDrop/100 {
			drops = append(drops, d)
		}
	}
	sort.SliceStable(drops, func(i, j int) bool { return drops[i].Percent > drops[j].Percent })
	res.Problems = append(res.Problems, vanished...)
	for _, d := range drops {
		res.Problems = append(res.Problems, d.format(words.Items))
	}
	if res.BiggestDrop != nil {
		res.Biggest = res.BiggestDrop.format(words.Items)
	}
	res.Problems = append(res.Problems, p.vanishedObjects(base.Source.Objects, cur.Source.Objects, gone, &res.Objects)...)
	res.Problems = append(res.Problems, wentBack(base.Source.Migrations, cur.Source.Migrations)...)
	return res
}

// vanishedObjects lists the baseline's schema objects missing from cur,
// leaving out the tables already reported gone and what hangs off them.
func (p Policy) vanishedObjects(base, cur map[string][]string, goneTables map[string]bool, compared *int) []string {
	kinds := make([]string, 0, len(base))
	for k := range base {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var out []string
	for _, kind := range kinds {
		have := make(map[string]bool, len(cur[kind]))
		for _, n := range cur[kind] {
			have[n] = true
		}
		for _, n := range base[kind] {
			// PostgreSQL quotes identifiers in object names, not in tables.
			plain := strings.ReplaceAll(n, `"`, "")
			if p.ignoredObject(plain) {
				continue
			}
			*compared++
			if have[n] || goneTables[plain] || ofGoneTable(plain, goneTables) {
				continue
			}
			out = append(out, kind+" "+n+" gone")
		}
	}
	return out
}

// ofGoneTable: constraints and triggers are named schema.table.name,
// MongoDB indexes db.collection.name.
func ofGoneTable(object string, gone map[string]bool) bool {
	if len(gone) == 0 {
		return false
	}
	for i := range len(object) {
		if object[i] == '.' && gone[object[:i]] {
			return true
		}
	}
	return false
}

// wentBack lists migration tables whose version is lower than the
// baseline's, or that hold fewer applied migrations.
func wentBack(base, cur []engine.Migration) []string {
	var out []string
	for _, b := range base {
		for _, c := range cur {
			if c.Table != b.Table || c.Tool != b.Tool {
				continue
			}
			if cmp, ok := engine.CompareVersions(c.Version, b.Version); b.Ordered() && ok && cmp < 0 {
				out = append(out, fmt.Sprintf("schema version of %s (%s) went back: %s -> %s", b.Table, b.Tool, b.Version, c.Version))
			} else if c.Applied < b.Applied {
				out = append(out, fmt.Sprintf("schema migrations in %s (%s) went back: %d -> %d applied (%s -> %s)",
					b.Table, b.Tool, b.Applied, c.Applied, b.Version, c.Version))
			}
		}
	}
	return out
}

func (p Policy) ignored(schema, name string) bool {
	for _, pat := range p.Ignore {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
		if ok, _ := path.Match(pat, qualified(schema, name)); ok {
			return true
		}
	}
	return false
}

// ignoredObject matches an object's name ("public.orders_pkey",
// "public.sessions.sessions_pkey") and the table it hangs off.
func (p Policy) ignoredObject(name string) bool {
	parts := strings.Split(name, ".")
	switch len(parts) {
	case 1:
		return p.ignored("", parts[0])
	case 2:
		return p.ignored(parts[0], parts[1])
	default:
		return p.ignored(parts[0], parts[1]) || p.ignored(parts[0], strings.Join(parts[1:], "."))
	}
}

func qualified(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "." + name
}

func formatPercent(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

// Message is the continuity step's message for a failed comparison, as
// "public.order_items: 15000 -> 1500 rows (-90%) since 20261202T020000Z-...".
func Message(r Result, baseline string) string {
	const maxListed = 5
	problems := r.Problems
	more := ""
	if len(problems) > maxListed {
		more = fmt.Sprintf("; and %d more", len(problems)-maxListed)
		problems = problems[:maxListed]
	}
	return strings.Join(problems, "; ") + more + " since " + baseline
}

// SchemaVersion describes the migration versions a manifest records, e.g.
// "flyway 42"; "" when it records none.
func SchemaVersion(s *engine.SourceStats) string {
	var parts []string
	for _, m := range s.Migrations {
		if m.Version != "" {
			parts = append(parts, m.String())
		}
	}
	return strings.Join(parts, ", ")
}
