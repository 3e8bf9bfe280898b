package continuity

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/engine"
)

const baseID = "20261202T020000Z-aaaaaaaa"

func manifest(id string, tables map[string]int64, objects map[string][]string, migrations ...engine.Migration) *catalog.Manifest {
	m := &catalog.Manifest{ID: id, Source: engine.SourceStats{Objects: objects, Migrations: migrations}}
	for name, rows := range tables {
		schema, tbl, _ := strings.Cut(name, ".")
		m.Source.Tables = append(m.Source.Tables, engine.TableStats{Schema: schema, Name: tbl, Rows: rows})
	}
	slices.SortFunc(m.Source.Tables, func(a, b engine.TableStats) int { return strings.Compare(a.Schema+a.Name, b.Schema+b.Name) })
	return m
}

var defaults = Policy{MaxDrop: 50, MinRows: 1000}

func TestCompare(t *testing.T) {
	base := map[string]int64{"public.orders": 10000, "public.order_items": 15000, "public.customers": 500}
	objects := map[string][]string{
		"table":      {"public.customers", "public.order_items", "public.orders"},
		"index":      {"public.order_items_pkey", "public.orders_created_idx", "public.orders_pkey"},
		"constraint": {"public.order_items.order_items_order_fk", "public.orders.orders_pkey"},
		"view":       {"public.order_totals"},
	}
	flyway := func(v string, applied int64) engine.Migration {
		return engine.Migration{Tool: engine.ToolFlyway, Table: "public.flyway_schema_history", Version: v, Applied: applied}
	}
	without := func(m map[string][]string, kind, name string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			out[k] = slices.DeleteFunc(slices.Clone(v), func(s string) bool { return k == kind && s == name })
		}
		return out
	}
	with := func(changes map[string]int64) map[string]int64 {
		out := map[string]int64{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range changes {
			if v < 0 {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name     string
		base     *catalog.Manifest
		cur      *catalog.Manifest
		policy   Policy
		problems []string
		biggest  string
	}{
		{"unchanged", manifest(baseID, base, objects), manifest("b", base, objects), defaults, nil, ""},
		{"growth and a new table", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.orders": 20000, "public.audit": 5}), objects), defaults, nil, ""},
		{"small drop passes", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.orders": 6000}), objects), defaults, nil, "public.orders: 10000 -> 6000 rows (-40%)"},
		{"90% drop fails naming the table", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.order_items": 1500}), objects), defaults,
			[]string{"public.order_items: 15000 -> 1500 rows (-90%)"}, "public.order_items: 15000 -> 1500 rows (-90%)"},
		{"drop of exactly max_drop passes", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.orders": 5000}), objects), defaults, nil, "public.orders: 10000 -> 5000 rows (-50%)"},
		{"small table below min_rows emptied", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.customers": 0}), objects), defaults, nil, ""},
		{"emptied below min_rows with min_rows 0", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.customers": 0}), objects), Policy{MaxDrop: 50},
			[]string{"public.customers: 500 -> 0 rows (-100%)"}, "public.customers: 500 -> 0 rows (-100%)"},
		{"two drops biggest first", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.orders": 4000, "public.order_items": 10}), objects), defaults,
			[]string{"public.order_items: 15000 -> 10 rows (-99.9%)", "public.orders: 10000 -> 4000 rows (-60%)"}, "public.order_items: 15000 -> 10 rows (-99.9%)"},
		{"dropped table fails naming it, once", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.customers": -1}), without(objects, "table", "public.customers")), defaults,
			[]string{"table public.customers gone"}, ""},
		{"dropped table with its constraints and index", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.order_items": -1}),
				without(without(without(objects, "table", "public.order_items"), "constraint", "public.order_items.order_items_order_fk"), "index", "public.order_items_pkey")),
			defaults, []string{"table public.order_items gone", "index public.order_items_pkey gone"}, ""},
		{"dropped index fails", manifest(baseID, base, objects),
			manifest("b", base, without(objects, "index", "public.orders_created_idx")), defaults,
			[]string{"index public.orders_created_idx gone"}, ""},
		{"dropped view fails", manifest(baseID, base, objects),
			manifest("b", base, without(objects, "view", "public.order_totals")), defaults,
			[]string{"view public.order_totals gone"}, ""},
		{"ignored table may go and drop", manifest(baseID, base, objects),
			manifest("b", with(map[string]int64{"public.order_items": -1, "public.orders": 1}),
				without(without(objects, "table", "public.order_items"), "constraint", "public.order_items.order_items_order_fk")),
			Policy{MaxDrop: 50, MinRows: 1000, Ignore: []string{"order_items", "public.ord?rs"}}, nil, ""},
		{"schema pattern", manifest(baseID, map[string]int64{"cache.a": 5000, "cache.b": 5000, "public.c": 5000}, nil),
			manifest("b", map[string]int64{"public.c": 5000}, nil), Policy{MaxDrop: 50, Ignore: []string{"cache.*"}}, nil, ""},
		{"quoted identifiers", manifest(baseID, map[string]int64{"Billing.Invoice Lines": 2000}, map[string][]string{
			"table": {`"Billing"."Invoice Lines"`}, "constraint": {`"Billing"."Invoice Lines"."Invoice Lines_pkey"`}}),
			manifest("b", nil, map[string][]string{}), defaults, []string{"table Billing.Invoice Lines gone"}, ""},
		{"no baseline objects: old manifest", manifest(baseID, base, nil), manifest("b", base, objects), defaults, nil, ""},
		{"flyway forward", manifest(baseID, base, objects, flyway("1.9", 9)), manifest("b", base, objects, flyway("1.10", 10)), defaults, nil, ""},
		{"flyway back", manifest(baseID, base, objects, flyway("42", 42)), manifest("b", base, objects, flyway("41", 41)), defaults,
			[]string{"schema version of public.flyway_schema_history (flyway) went back: 42 -> 41"}, ""},
		{"django unapplied", manifest(baseID, base, objects, engine.Migration{Tool: engine.ToolDjango, Table: "public.django_migrations", Version: "shop.0007_x", Applied: 30}),
			manifest("b", base, objects, engine.Migration{Tool: engine.ToolDjango, Table: "public.django_migrations", Version: "shop.0006_y", Applied: 29}), defaults,
			[]string{"schema migrations in public.django_migrations (django) went back: 30 -> 29 applied (shop.0007_x -> shop.0006_y)"}, ""},
		{"alembic revision changes", manifest(baseID, base, objects, engine.Migration{Tool: engine.ToolAlembic, Table: "public.alembic_version", Version: "ae1027a6acf", Applied: 1}),
			manifest("b", base, objects, engine.Migration{Tool: engine.ToolAlembic, Table: "public.alembic_version", Version: "1975ea83b712", Applied: 1}), defaults, nil, ""},
		{"redis: flushed database is a drop", manifest(baseID, map[string]int64{"redis.db0": 50000, "redis.db1": 20}, nil),
			manifest("b", map[string]int64{"redis.db1": 25}, nil), Policy{MaxDrop: 90, MinRows: 10000, MissingIsEmpty: true, Words: engine.DatabasesKeys},
			[]string{"redis.db0: 50000 -> 0 keys (-100%)"}, "redis.db0: 50000 -> 0 keys (-100%)"},
		{"redis: churn passes", manifest(baseID, map[string]int64{"redis.db0": 50000}, nil),
			manifest("b", map[string]int64{"redis.db0": 8000}, nil), Policy{MaxDrop: 90, MinRows: 10000, MissingIsEmpty: true},
			nil, "redis.db0: 50000 -> 8000 rows (-84%)"},
		{"mongodb: dropped collection and its indexes", manifest(baseID, map[string]int64{"shop.orders": 3000, "shop.carts": 10}, map[string][]string{
			"collection": {"shop.carts", "shop.orders"}, "index": {"shop.carts._id_", "shop.orders._id_", "shop.orders.by_date"}}),
			manifest("b", map[string]int64{"shop.carts": 10}, map[string][]string{"collection": {"shop.carts"}, "index": {"shop.carts._id_"}}),
			Policy{MaxDrop: 50, MinRows: 1000, Words: engine.CollectionsDocs}, []string{"collection shop.orders gone"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Compare(tc.base, tc.cur, tc.policy)
			if !slices.Equal(res.Problems, tc.problems) {
				t.Errorf("problems\n got %q\nwant %q", res.Problems, tc.problems)
			}
			if res.OK() != (len(tc.problems) == 0) {
				t.Errorf("OK() = %v", res.OK())
			}
			biggest := res.Biggest
			if (res.BiggestDrop == nil) != (biggest == "") {
				t.Errorf("BiggestDrop %v, Biggest %q", res.BiggestDrop, biggest)
			}
			if biggest != tc.biggest {
				t.Errorf("biggest drop %q, want %q", biggest, tc.biggest)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	res := Compare(manifest(baseID, map[string]int64{"public.order_items": 15000}, nil),
		manifest("b", map[string]int64{"public.order_items": 1500}, nil), defaults)
	if got, want := Message(res, baseID), "public.order_items: 15000 -> 1500 rows (-90%) since "+baseID; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var many Result
	for i := range 7 {
		many.Problems = append(many.Problems, "p"+string(rune('0'+i)))
	}
	if got := Message(many, baseID); got != "p0; p1; p2; p3; p4; and 2 more since "+baseID {
		t.Errorf("got %q", got)
	}
}

func TestSchemaVersion(t *testing.T) {
	s := &engine.SourceStats{Migrations: []engine.Migration{
		{Tool: engine.ToolFlyway, Table: "public.flyway_schema_history", Version: "42", Applied: 42},
		{Tool: engine.ToolAlembic, Table: "billing.alembic_version", Version: "", Applied: 0},
	}}
	if got := SchemaVersion(s); got != "flyway 42" {
		t.Errorf("got %q", got)
	}
	if got := SchemaVersion(&engine.SourceStats{}); got != "" {
		t.Errorf("got %q", got)
	}
}

// A large schema: 10,000 tables with an index and a constraint each.
func BenchmarkCompare(b *testing.B) {
	tables := map[string]int64{}
	objects := map[string][]string{}
	for i := range 10000 {
		name := fmt.Sprintf("public.t%05d", i)
		tables[name] = int64(1000 + i)
		objects["table"] = append(objects["table"], name)
		objects["index"] = append(objects["index"], name+"_idx")
		objects["constraint"] = append(objects["constraint"], name+"."+fmt.Sprintf("t%05d_pkey", i))
	}
	base, cur := manifest(baseID, tables, objects), manifest("b", tables, objects)
	p := Policy{MaxDrop: 50, MinRows: 1000, Ignore: []string{"sessions", "cache.*"}}
	for b.Loop() {
		Compare(base, cur, p)
	}
}
