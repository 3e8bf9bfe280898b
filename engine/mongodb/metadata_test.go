package mongodb

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/backproof/backproof/engine/mongodb/archive"
	"github.com/backproof/backproof/engine/mongodb/internal/spec"
)

// ext parses canonical or relaxed Extended JSON into raw BSON.
func ext(t *testing.T, js string) bson.Raw {
	t.Helper()
	var r bson.Raw
	if err := bson.UnmarshalExtJSON([]byte(js), false, &r); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return r
}

// Collection options and index options that FerretDB 1.24 does not have
// (validators, collations, views, TTL, partial, text and hashed indexes)
// go into the archive as listCollections and listIndexes gave them, in
// canonical Extended JSON, and come back out as the create and
// createIndexes commands MongoDB takes.
func TestOptionsRoundTrip(t *testing.T) {
	colls := []collection{
		{
			db: "shop", name: "orders", typ: typeCollection, uuid: "0123456789abcdef0123456789abcdef",
			options: ext(t, `{"validator": {"$jsonSchema": {"bsonType": "object", "required": ["status"]}},
				"validationLevel": "moderate", "validationAction": "error",
				"collation": {"locale": "fr", "strength": {"$numberInt": "2"}, "caseLevel": false},
				"autoIndexId": true}`),
			indexes: []bson.Raw{
				ext(t, `{"v": {"$numberInt": "2"}, "key": {"_id": {"$numberInt": "1"}}, "name": "_id_", "collation": {"locale": "fr"}}`),
				ext(t, `{"v": {"$numberInt": "2"}, "key": {"status": {"$numberInt": "1"}, "at": {"$numberInt": "-1"}}, "name": "status_1_at_-1", "partialFilterExpression": {"total": {"$gt": {"$numberDecimal": "10.50"}}}}`),
				ext(t, `{"v": {"$numberInt": "2"}, "key": {"at": {"$numberInt": "1"}}, "name": "ttl", "expireAfterSeconds": {"$numberInt": "3600"}, "ns": "shop.orders"}`),
				ext(t, `{"v": {"$numberInt": "2"}, "key": {"_fts": "text", "_ftsx": {"$numberInt": "1"}}, "name": "notes_text", "weights": {"notes": {"$numberInt": "1"}}, "default_language": "english", "textIndexVersion": {"$numberInt": "3"}}`),
				ext(t, `{"v": {"$numberInt": "2"}, "key": {"customer": "hashed"}, "name": "customer_hashed"}`),
			},
		},
		{db: "shop", name: "log", typ: typeCollection, options: ext(t, `{"capped": true, "size": {"$numberLong": "1048576"}, "max": {"$numberLong": "1000"}}`)},
		{db: "shop", name: "paid", typ: typeView, options: ext(t, `{"viewOn": "orders", "pipeline": [{"$match": {"status": "paid"}}, {"$project": {"_id": 1, "total": 1}}], "collation": {"locale": "fr"}}`)},
	}

	var buf bytes.Buffer
	w := archive.NewWriter(&buf)
	var prelude []archive.Collection
	for _, c := range colls {
		e, err := c.archiveEntry()
		if err != nil {
			t.Fatal(err)
		}
		prelude = append(prelude, e)
	}
	if err := w.Prelude(archive.Header{ServerVersion: "7.0.14"}, prelude); err != nil {
		t.Fatal(err)
	}
	for _, c := range colls {
		if err := w.Namespace(c.db, c.name).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	// The bytes, by the spec: canonical Extended JSON keeps every type.
	a, err := spec.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(a.Metadata[0].Lookup("metadata").StringValue()), &meta); err != nil {
		t.Fatal(err)
	}
	if meta["uuid"] != "0123456789abcdef0123456789abcdef" || meta["collectionName"] != "orders" || meta["type"] != "collection" {
		t.Errorf("metadata %v", meta)
	}
	js := a.Metadata[0].Lookup("metadata").StringValue()
	for _, want := range []string{`"$jsonSchema":{"bsonType":"object"`, `"strength":{"$numberInt":"2"}`, `"$numberDecimal":"10.50"`, `"expireAfterSeconds":{"$numberInt":"3600"}`, `"customer":"hashed"`} {
		if !strings.Contains(js, want) {
			t.Errorf("metadata lacks %s: %s", want, js)
		}
	}
	if v := a.Metadata[2].Lookup("metadata").StringValue(); !strings.Contains(v, `"indexes":[]`) || !strings.Contains(v, `"viewOn":"orders"`) {
		t.Errorf("view metadata %s", v)
	}

	// And back: the commands a restore runs.
	r, err := archive.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planRestore(r.Prelude, "copy")
	if err != nil {
		t.Fatal(err)
	}
	wantCreate := []string{
		`{"create": "orders","validator": {"$jsonSchema": {"bsonType": "object","required": ["status"]}},"validationLevel": "moderate","validationAction": "error","collation": {"locale": "fr","strength": {"$numberInt":"2"},"caseLevel": false}}`,
		`{"create": "log","capped": true,"size": {"$numberLong":"1048576"},"max": {"$numberLong":"1000"}}`,
		`{"create": "paid","viewOn": "orders","pipeline": [{"$match": {"status": "paid"}},{"$project": {"_id": {"$numberInt":"1"},"total": {"$numberInt":"1"}}}],"collation": {"locale": "fr"}}`,
	}
	for i, tg := range plan {
		if tg.db != "copy" || tg.typ != colls[i].typ {
			t.Errorf("target %+v", tg)
		}
		cmd, err := createCommand(tg)
		if err != nil {
			t.Fatal(err)
		}
		if got := rawString(t, cmd); got != wantCreate[i] {
			t.Errorf("create:\n got %s\nwant %s", got, wantCreate[i])
		}
	}
	cmd, err := indexCommand(plan[0])
	if err != nil {
		t.Fatal(err)
	}
	wantIndexes := `{"createIndexes": "orders","indexes": [` +
		`{"key": {"status": {"$numberInt":"1"},"at": {"$numberInt":"-1"}},"name": "status_1_at_-1","partialFilterExpression": {"total": {"$gt": {"$numberDecimal":"10.50"}}}},` +
		`{"key": {"at": {"$numberInt":"1"}},"name": "ttl","expireAfterSeconds": {"$numberInt":"3600"}},` +
		`{"key": {"_fts": "text","_ftsx": {"$numberInt":"1"}},"name": "notes_text","weights": {"notes": {"$numberInt":"1"}},"default_language": "english","textIndexVersion": {"$numberInt":"3"}},` +
		`{"key": {"customer": "hashed"},"name": "customer_hashed"}],"ignoreUnknownIndexOptions": true}`
	if got := rawString(t, cmd); got != wantIndexes {
		t.Errorf("createIndexes:\n got %s\nwant %s", got, wantIndexes)
	}
	if cmd, err := indexCommand(plan[1]); cmd != nil || err != nil {
		t.Errorf("no index but _id: %v %v", cmd, err)
	}

	var m metadata
	if err := bson.UnmarshalExtJSON([]byte(js), true, &m); err != nil || !reflect.DeepEqual(m.Options, colls[0].options) {
		t.Errorf("options changed on the way: %s", m.Options)
	}
}

func rawString(t *testing.T, d bson.D) string {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return bson.Raw(b).String()
}

func TestSplitURI(t *testing.T) {
	for _, tc := range []struct{ uri, hosts, db string }{
		{"mongodb://u:p@h1:27017,h2:27018/shop?replicaSet=rs0", "h1:27017,h2:27018", "shop"},
		{"mongodb+srv://u:p%40ss@cluster0.example.net/?retryWrites=true", "cluster0.example.net", ""},
		{"mongodb://h/my%20db", "h", "my db"},
		{"mongodb://h", "h", ""},
	} {
		hosts, db, ok := splitURI(tc.uri)
		if !ok || hosts != tc.hosts || db != tc.db {
			t.Errorf("%s: %q %q %v", tc.uri, hosts, db, ok)
		}
	}
	if msg := redactURI("bad p@ss and p%40ss", "mongodb://u:p%40ss@h/db"); strings.Contains(msg, "p@ss") || strings.Contains(msg, "p%40ss") {
		t.Errorf("not redacted: %s", msg)
	}
}
