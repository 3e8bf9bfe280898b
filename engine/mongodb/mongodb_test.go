package mongodb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/archive"
	"github.com/backproof/backproof/engine/mongodb/internal/spec"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// seeded returns a URI of a fresh database filled by sample.SeedMongo.
func seeded(t *testing.T, orders int) string {
	t.Helper()
	uri := testenv.NewMongoDB(t)
	if _, err := sample.SeedMongo(context.Background(), uri, orders); err != nil {
		t.Fatal(err)
	}
	return uri
}

// dump dumps uri into a file and returns its path and what Dump recorded.
func dump(t *testing.T, uri string) (string, *engine.DumpInfo) {
	t.Helper()
	var buf bytes.Buffer
	info, err := New(uri).Dump(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.archive")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, info
}

func dbOf(t testing.TB, uri string) string {
	t.Helper()
	_, db, ok := splitURI(uri)
	if !ok || db == "" {
		t.Fatalf("no database in %s", uri)
	}
	return db
}

func TestDump(t *testing.T) {
	ctx := context.Background()
	src := seeded(t, 2500)
	db := dbOf(t, src)
	path, info := dump(t, src)

	want, err := sample.MongoCounts(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, tb := range info.Source.Tables {
		if tb.Schema != db {
			t.Errorf("table %+v of another database", tb)
		}
		got[tb.Name] = tb.Rows
	}
	if !reflect.DeepEqual(got, want) || want["orders"] != 2500 || want["audit_empty"] != 0 {
		t.Errorf("recorded %v, the source holds %v", got, want)
	}
	for _, ix := range []string{"customers.email_unique", "customers._id_", "customers.address.city_1_created_at_-1", "orders.number_1", "orders.status_1_created_at_-1", "events.kind_1", "audit_empty.at_-1"} {
		if !slices.Contains(info.Source.Objects["index"], db+"."+ix) {
			t.Errorf("index %s not recorded: %v", ix, info.Source.Objects["index"])
		}
	}
	if len(info.Source.Objects["collection"]) != 4 || info.ServerVersion == "" || info.Tools[ToolName] == "" {
		t.Errorf("info %+v", info)
	}

	// The archive by the spec's grammar, every namespace with the documents
	// Dump counted, the metadata with every index.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := spec.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range want {
		if got := len(a.Namespaces[db+"."+name].Docs); int64(got) != n {
			t.Errorf("archive holds %d documents of %s, want %d", got, name, n)
		}
	}
	for _, m := range a.Metadata {
		js := m.Lookup("metadata").StringValue()
		if m.Lookup("collection").StringValue() == "customers" &&
			(!strings.Contains(js, `"name":"email_unique"`) || !strings.Contains(js, `"unique":true`)) {
			t.Errorf("customers metadata lacks the unique index: %s", js)
		}
		if m.Lookup("collection").StringValue() == "events" && !strings.Contains(js, `"capped":true`) {
			t.Errorf("events metadata lacks capped: %s", js)
		}
	}
}

// docs returns every document of a collection, by _id.
func docs(t *testing.T, c *mongo.Collection) []bson.Raw {
	t.Helper()
	cur, err := c.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// indexes returns a collection's index specs without the version, by name.
func indexes(t *testing.T, c *mongo.Collection) map[string]string {
	t.Helper()
	specs, err := listIndexes(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range specs {
		var d bson.D
		if err := bson.Unmarshal(s, &d); err != nil {
			t.Fatal(err)
		}
		d = slices.DeleteFunc(d, func(e bson.E) bool { return e.Key == "v" || e.Key == "ns" })
		out[indexName(s)] = fmt.Sprint(d)
	}
	return out
}

// sameDatabase compares two databases document by document, byte for byte
// (so field order and every BSON type), and their indexes and options.
func sameDatabase(t *testing.T, wantURI, gotURI string) {
	t.Helper()
	ctx := context.Background()
	want := testenv.MongoClient(t, wantURI).Database(dbOf(t, wantURI))
	got := testenv.MongoClient(t, gotURI).Database(dbOf(t, gotURI))
	wantColls, err := listCollections(ctx, want, false)
	if err != nil {
		t.Fatal(err)
	}
	gotColls, err := listCollections(ctx, got, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotColls) != len(wantColls) {
		t.Fatalf("%d collections, want %d", len(gotColls), len(wantColls))
	}
	for i, wc := range wantColls {
		gc := gotColls[i]
		if gc.name != wc.name || gc.typ != wc.typ || !bytes.Equal(gc.options, wc.options) {
			t.Errorf("collection %s %s %s, want %s %s %s", gc.name, gc.typ, gc.options, wc.name, wc.typ, wc.options)
			continue
		}
		w, g := docs(t, want.Collection(wc.name)), docs(t, got.Collection(wc.name))
		if len(g) != len(w) {
			t.Errorf("%s: %d documents, want %d", wc.name, len(g), len(w))
			continue
		}
		for j := range w {
			if !bytes.Equal(g[j], w[j]) {
				t.Errorf("%s: document %d differs:\n got %s\nwant %s", wc.name, j, g[j], w[j])
				break
			}
		}
		if gi, wi := indexes(t, got.Collection(wc.name)), indexes(t, want.Collection(wc.name)); !reflect.DeepEqual(gi, wi) {
			t.Errorf("%s: indexes %v, want %v", wc.name, gi, wi)
		}
	}
}

func TestRestoreInto(t *testing.T) {
	ctx := context.Background()
	src := seeded(t, 2500)
	path, info := dump(t, src)
	e := New(src)

	t.Run("into another database", func(t *testing.T) {
		dst := testenv.NewMongoDB(t)
		if err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		sameDatabase(t, src, dst)

		// Again: the collections exist; nothing is dropped or changed.
		err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{})
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "the target is as it was") {
			t.Fatalf("second restore: %v", err)
		}
		sameDatabase(t, src, dst)

		// Clean drops and recreates them.
		if _, err := testenv.MongoClient(t, dst).Database(dbOf(t, dst)).Collection("orders").DeleteMany(ctx, bson.D{{Key: "status", Value: "paid"}}); err != nil {
			t.Fatal(err)
		}
		if err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{Clean: true}); err != nil {
			t.Fatal(err)
		}
		sameDatabase(t, src, dst)
	})

	t.Run("failure drops what it created", func(t *testing.T) {
		// A value flipped in the last document of orders: the CRC check
		// fails after customers and events were loaded.
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.LastIndex(data, []byte("total_cents\x00"))
		data[i+len("total_cents\x00")] ^= 0x01
		bad := filepath.Join(t.TempDir(), "bad.archive")
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := testenv.NewMongoDB(t)
		err = e.RestoreInto(ctx, dst, bad, info, engine.RestoreOptions{})
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "CRC mismatch") || !strings.Contains(err.Error(), "the target is as it was") {
			t.Fatalf("got %v", err)
		}
		names, err := testenv.MongoClient(t, dst).Database(dbOf(t, dst)).ListCollectionNames(ctx, bson.D{})
		if err != nil || len(names) != 0 {
			t.Fatalf("target holds %v (%v)", names, err)
		}

		// --force over a target that holds the collections: the failed
		// load leaves them exactly as they were, not dropped.
		if err := e.RestoreInto(ctx, dst, path, info, engine.RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		db := testenv.MongoClient(t, dst).Database(dbOf(t, dst))
		if _, err := db.Collection("orders").DeleteMany(ctx, bson.D{{Key: "status", Value: "paid"}}); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, dst)
		err = e.RestoreInto(ctx, dst, bad, info, engine.RestoreOptions{Clean: true})
		if !errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "the target is as it was") {
			t.Fatalf("forced restore of a bad archive: %v", err)
		}
		if after := snapshot(t, dst); !reflect.DeepEqual(after, before) {
			t.Fatalf("a failed forced restore changed the target:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("several databases need a target without one", func(t *testing.T) {
		plan, err := planRestore(nil, "x")
		if err != nil || len(plan) != 0 {
			t.Fatal(plan, err)
		}
		_, err = planRestore([]archive.Collection{{DB: "a", Collection: "c", Metadata: "{}"}, {DB: "b", Collection: "c", Metadata: "{}"}}, "x")
		if err == nil || !strings.Contains(err.Error(), "holds 2 databases (a, b)") {
			t.Fatalf("got %v", err)
		}
	})
}

// serverOf is the engine.Server of a single-host admin URI.
func serverOf(t *testing.T, uri string) engine.Server {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	return engine.Server{Host: u.Hostname(), Port: port, User: u.User.Username(), Password: pass}
}

// A URI without a database: every database but the system ones is backed
// up and restored under its own name; a target naming one is refused.
func TestAllDatabases(t *testing.T) {
	ctx := context.Background()
	shop, _ := testenv.StartFerretDB(t, "shop")
	if _, err := sample.SeedMongo(ctx, shop, 300); err != nil {
		t.Fatal(err)
	}
	crm := strings.Replace(shop, "/shop?", "/crm?", 1)
	if _, err := sample.SeedMongo(ctx, crm, 100); err != nil {
		t.Fatal(err)
	}
	all := strings.Replace(shop, "/shop?", "/?", 1)
	path, info := dump(t, all)
	var dbs []string
	for _, tb := range info.Source.Tables {
		if !slices.Contains(dbs, tb.Schema) {
			dbs = append(dbs, tb.Schema)
		}
	}
	if !slices.Equal(dbs, []string{"crm", "shop"}) { // admin (which holds the users) is left out
		t.Fatalf("dumped databases %v", dbs)
	}

	target, _ := testenv.StartFerretDB(t, "x")
	err := New("").RestoreInto(ctx, target, path, info, engine.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds 2 databases (crm, shop) and the target names one (x)") {
		t.Fatalf("restore into one database: %v", err)
	}
	targetAll := strings.Replace(target, "/x?", "/?", 1)
	if n, err := New("").Objects(ctx, targetAll); err != nil || n != 0 {
		t.Fatalf("empty target: %d objects, %v", n, err)
	}
	if err := New("").RestoreInto(ctx, targetAll, path, info, engine.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := New("").Objects(ctx, targetAll); err != nil || n != 8 {
		t.Errorf("restored target: %d objects, %v; want 8", n, err)
	}
	sameDatabase(t, shop, strings.Replace(target, "/x?", "/shop?", 1))
	sameDatabase(t, crm, strings.Replace(target, "/x?", "/crm?", 1))

	c, err := New("").Open(ctx, serverOf(t, target))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	got, err := c.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tables, info.Source.Tables) || !reflect.DeepEqual(got.Objects, info.Source.Objects) {
		t.Errorf("observed %+v, dumped %+v", got, info.Source)
	}
	if _, err := c.Query(ctx, `{"count": "orders"}`); !errors.Is(err, engine.ErrQuery) || !strings.Contains(err.Error(), `holds 2 databases (crm, shop): name one with "$db"`) {
		t.Errorf("query without $db: %v", err)
	}
	if v, err := c.Query(ctx, `{"count": "orders", "$db": "crm"}`); err != nil || v.Text != "100" {
		t.Errorf("query with $db: %+v %v", v, err)
	}
}

// snapshot is every collection of the database at uri with its document
// count and a digest of its documents in _id order.
func snapshot(t *testing.T, uri string) map[string]string {
	t.Helper()
	ctx := context.Background()
	db := testenv.MongoClient(t, uri).Database(dbOf(t, uri))
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		h, docs := sha256.New(), 0
		for cur.Next(ctx) {
			h.Write(cur.Current)
			docs++
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		out[n] = fmt.Sprintf("%d %x", docs, h.Sum(nil)[:8])
	}
	return out
}
