package checkquery

import (
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestParse(t *testing.T) {
	cases := []struct {
		query, command, coll, db, err string
		keys                          []string
	}{
		{query: `{"count": "orders"}`, command: "count", coll: "orders", keys: []string{"count"}},
		{query: `{"count": "orders", "query": {"status": "paid"}, "$db": "shop"}`, command: "count", coll: "orders", db: "shop", keys: []string{"count", "query"}},
		{query: `{"aggregate": "orders", "pipeline": [{"$group": {"_id": null, "t": {"$max": "$created_at"}}}]}`, command: "aggregate", coll: "orders", keys: []string{"aggregate", "pipeline", "cursor"}},
		{query: `{"aggregate": "o", "pipeline": [], "cursor": {"batchSize": 2}}`, command: "aggregate", coll: "o", keys: []string{"aggregate", "pipeline", "cursor"}},
		{query: `{"find": "orders", "filter": {"at": {"$gte": {"$date": "2026-01-01T00:00:00Z"}}}, "limit": 1}`, command: "find", coll: "orders", keys: []string{"find", "filter", "limit"}},
		{query: `SELECT count(*) FROM orders`, err: "not an Extended JSON command document"},
		{query: `{}`, err: "empty command document"},
		{query: `{"insert": "orders", "documents": [{}]}`, err: `command "insert" is not allowed`},
		{query: `{"query": {}, "count": "orders"}`, err: `command "query" is not allowed`},
		{query: `{"count": 1}`, err: "want a collection name"},
		{query: `{"count": "o", "$db": 5}`, err: "$db: want a database name"},
		{query: `{"aggregate": "o"}`, err: "a pipeline is required"},
		{query: `{"aggregate": "o", "pipeline": {"$match": {}}}`, err: "must be an array"},
		{query: `{"aggregate": "o", "pipeline": [{"$match": {}}, {"$out": "x"}]}`, err: "stage $out writes"},
		{query: `{"aggregate": "o", "pipeline": [{"$merge": {"into": "x"}}]}`, err: "stage $merge writes"},
		{query: `{"aggregate": "o", "pipeline": [{"$match": {}, "$limit": 1}]}`, err: "one field"},
	}
	for _, tc := range cases {
		q, err := Parse(tc.query)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		var keys []string
		for _, e := range q.Doc {
			keys = append(keys, e.Key)
		}
		if q.Command != tc.command || q.Collection != tc.coll || q.DB != tc.db || strings.Join(keys, ",") != strings.Join(tc.keys, ",") {
			t.Errorf("%s: got %+v (keys %v)", tc.query, q, keys)
		}
	}
}

// Extended JSON types survive: a date in a filter stays a date.
func TestParseKeepsTypes(t *testing.T) {
	q, err := Parse(`{"count": "o", "query": {"at": {"$gte": {"$date": "2026-01-01T00:00:00Z"}}, "n": {"$numberLong": "5"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bson.Marshal(q.Doc)
	if err != nil {
		t.Fatal(err)
	}
	if v := bson.Raw(raw).Lookup("query", "at", "$gte"); v.Type != bson.TypeDateTime {
		t.Errorf("date became %s", v.Type)
	}
	if v := bson.Raw(raw).Lookup("query", "n"); v.Type != bson.TypeInt64 {
		t.Errorf("$numberLong became %s", v.Type)
	}
}
