package mysql

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/backproof/backproof/engine"
)

// Object kinds in engine.SourceStats.Objects.
const (
	kindTable     = "table"
	kindView      = "view"
	kindIndex     = "index"
	kindTrigger   = "trigger"
	kindProcedure = "procedure"
	kindFunction  = "function"
	kindEvent     = "event"
)

// table is a base table or view of one database.
type table struct {
	db, name string
	view     bool
	engine   string // storage engine; "" for views
	columns  []column
	rows     int64
}

type column struct {
	name      string
	dataType  string // information_schema DATA_TYPE, lower case
	generated bool   // virtual or stored generated: never inserted
}

// transactional reports whether the table's copy belongs to the dump's
// snapshot.
func (t *table) transactional() bool {
	switch strings.ToLower(t.engine) {
	case "innodb", "rocksdb":
		return true
	}
	return false
}

// schema is one database's inventory.
type schema struct {
	name     string
	tables   []*table // base tables then views, each sorted by name
	indexes  []string // table.index
	triggers []string
	procs    []string
	funcs    []string
	events   []string
}

// inventory lists what a database holds, from information_schema.
func inventory(ctx context.Context, q querier, db string, withEvents bool) (*schema, error) {
	s := &schema{name: db}
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, '') FROM information_schema.TABLES
WHERE TABLE_SCHEMA = ? ORDER BY TABLE_TYPE = 'VIEW', TABLE_NAME`, db)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	byName := map[string]*table{}
	for rows.Next() {
		var name, typ, eng string
		if err := rows.Scan(&name, &typ, &eng); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables of %s: %w", db, err)
		}
		t := &table{db: db, name: name, engine: eng}
		switch typ {
		case "BASE TABLE":
		case "VIEW", "SYSTEM VIEW":
			t.view, t.engine = true, ""
		default:
			rows.Close()
			return nil, fmt.Errorf("%s.%s is a %s, which this version of backproof cannot back up", db, name, strings.ToLower(typ))
		}
		s.tables = append(s.tables, t)
		byName[name] = t
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}

	rows, err = q.QueryContext(ctx, `SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), EXTRA FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`, db)
	if err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", db, err)
	}
	for rows.Next() {
		var tn, extra string
		var c column
		if err := rows.Scan(&tn, &c.name, &c.dataType, &extra); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list columns of %s: %w", db, err)
		}
		x := strings.ToUpper(extra)
		c.generated = strings.Contains(x, "VIRTUAL GENERATED") || strings.Contains(x, "STORED GENERATED") || strings.Contains(x, "PERSISTENT GENERATED")
		if t := byName[tn]; t != nil {
			t.columns = append(t.columns, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %s: %w", db, err)
	}

	if s.indexes, err = queryStrings(ctx, q, `SELECT DISTINCT CONCAT(TABLE_NAME, '.', INDEX_NAME) FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = ?`, db); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", db, err)
	}
	if s.triggers, err = queryStrings(ctx, q, `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`, db); err != nil {
		return nil, fmt.Errorf("list triggers of %s: %w", db, err)
	}
	if s.procs, err = queryStrings(ctx, q, `SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE'`, db); err != nil {
		return nil, fmt.Errorf("list procedures of %s: %w", db, err)
	}
	if s.funcs, err = queryStrings(ctx, q, `SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION'`, db); err != nil {
		return nil, fmt.Errorf("list functions of %s: %w", db, err)
	}
	if withEvents {
		if s.events, err = queryStrings(ctx, q, `SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`, db); err != nil {
			return nil, fmt.Errorf("list events of %s: %w", db, err)
		}
	}
	for _, l := range [][]string{s.indexes, s.triggers, s.procs, s.funcs, s.events} {
		slices.Sort(l)
	}
	return s, nil
}

// addTo records the database's objects and row counts in stats.
func (s *schema) addTo(st *engine.SourceStats) {
	add := func(kind string, names []string) {
		for _, n := range names {
			st.Objects[kind] = append(st.Objects[kind], s.name+"."+n)
		}
	}
	for _, t := range s.tables {
		if t.view {
			add(kindView, []string{t.name})
			continue
		}
		add(kindTable, []string{t.name})
		st.Tables = append(st.Tables, engine.TableStats{Schema: s.name, Name: t.name, Rows: t.rows})
	}
	add(kindIndex, s.indexes)
	add(kindTrigger, s.triggers)
	add(kindProcedure, s.procs)
	add(kindFunction, s.funcs)
	add(kindEvent, s.events)
}

// sortStats sorts tables and every object list, as engine.SourceStats asks.
func sortStats(s *engine.SourceStats) {
	slices.SortFunc(s.Tables, func(a, b engine.TableStats) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	for k, v := range s.Objects {
		if len(v) == 0 {
			delete(s.Objects, k)
			continue
		}
		slices.Sort(v)
	}
}
