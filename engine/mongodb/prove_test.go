package mongodb

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// A dump restored into a sandbox of the configured image: Observe sees
// exactly what the dump recorded, validate passes, check queries answer.
func TestSandboxRestore(t *testing.T) {
	image := testenv.MongoImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	src := seeded(t, 1000)
	path, info := dump(t, src)
	db := dbOf(t, src)

	e := New("")
	spec, srv := e.Sandbox(image, "Pw-"+strings.Repeat("x", 20), info)
	srv.Host, srv.Port = testenv.StartSandbox(t, spec)

	if err := e.Restore(ctx, srv, path, info, engine.RestoreOptions{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Open(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if !c.(*restored).ferretDB {
		t.Error("the FerretDB sandbox is not recognised as FerretDB: its aggregate checks would carry maxTimeMS")
	}
	got, err := c.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tables, info.Source.Tables) {
		t.Errorf("tables differ:\ndump %v\ncopy %v", info.Source.Tables, got.Tables)
	}
	if !reflect.DeepEqual(got.Objects, info.Source.Objects) {
		t.Errorf("objects differ:\ndump %v\ncopy %v", info.Source.Objects, got.Objects)
	}
	if n, err := c.Integrity(ctx); err != nil || n == "" {
		t.Errorf("validate: %s, %v", n, err)
	}

	recent := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		query, want string
		isTime      bool
	}{
		{query: `{"count": "orders"}`, want: "1000"},
		{query: `{"count": "orders", "query": {"status": {"$in": ["paid", "new", "shipped", "cancelled"]}}, "$db": "` + db + `"}`, want: "1000"},
		{query: `{"count": "customers", "query": {"vip": true}}`, want: "19"},
		{query: `{"aggregate": "orders", "pipeline": [{"$group": {"_id": null, "n": {"$sum": 1}}}]}`, want: "1000"},
		{query: `{"find": "orders", "sort": {"created_at": -1}, "limit": 1, "projection": {"_id": 0, "created_at": 1}}`, isTime: true},
		{query: `{"find": "customers", "filter": {"email": "customer7@example.com"}, "projection": {"_id": 0, "address.city": 1}}`, want: `{"city": "Kraków"}`},
		{query: `{"count": "nosuch"}`, want: "0"},
	} {
		v, err := c.Query(ctx, tc.query)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.query, err)
		case tc.isTime && (v.Time == nil || v.Time.Before(recent)):
			t.Errorf("%s: %+v, want a recent time", tc.query, v)
		case !tc.isTime && v.Text != tc.want:
			t.Errorf("%s: %q, want %q", tc.query, v.Text, tc.want)
		}
	}
	for _, tc := range []struct{ query, want string }{
		{`{"find": "orders", "limit": 2, "projection": {"status": 1}}`, "returned 2 documents, want exactly one"},
		{`{"find": "orders", "filter": {"status": "nope"}}`, "returned 0 documents"},
		{`{"find": "orders", "limit": 1, "projection": {"_id": 0, "status": 1, "number": 1}}`, "2 fields besides _id (number, status)"},
		{`{"count": "orders", "query": {"status": {"$bogus": 1}}}`, "$bogus"},
		{`{"insert": "orders", "documents": [{}]}`, `"insert" is not allowed`},
		{`{"count": "orders", "$db": ""}`, "$db"},
	} {
		_, err := c.Query(ctx, tc.query)
		if !errors.Is(err, engine.ErrQuery) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrQuery with %q", tc.query, err, tc.want)
		}
	}

	// Credentials are enforced: the wrong password is refused, and that is
	// not a bad backup.
	wrong := srv
	wrong.Password = "wrong"
	err = e.Restore(ctx, wrong, path, info, engine.RestoreOptions{})
	if err == nil || errors.Is(err, engine.ErrRestore) || !strings.Contains(err.Error(), "Authentication failed") {
		t.Errorf("wrong password: %v", err)
	}
}

// Which server errors make a backup bad and which only say the server
// could not do it.
func TestErrorClasses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		err       error
		bad       bool
		queryFail bool
	}{
		{mongo.CommandError{Code: 11000, Message: "E11000 duplicate key"}, true, true},
		{mongo.CommandError{Code: 2, Message: "BadValue"}, true, true},
		{mongo.CommandError{Code: 238, Message: "not implemented yet"}, false, false},
		{mongo.CommandError{Code: 13, Message: "Unauthorized"}, false, false},
		{mongo.CommandError{Code: 91, Message: "shutting down"}, false, false},
		{mongo.CommandError{Code: 10107, Message: "not primary", Labels: []string{"RetryableWriteError"}}, false, false},
		{errors.New("connection reset"), false, false},
	} {
		if got := errors.Is(serverErr(ctx, "op", tc.err), engine.ErrRestore); got != tc.bad {
			t.Errorf("restore %v: bad backup %v, want %v", tc.err, got, tc.bad)
		}
		if got := errors.Is(queryErr(tc.err), engine.ErrQuery); got != tc.queryFail {
			t.Errorf("query %v: check fails %v, want %v", tc.err, got, tc.queryFail)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := serverErr(cancelled, "op", mongo.CommandError{Code: 11000}); errors.Is(err, engine.ErrRestore) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestToValue(t *testing.T) {
	at := time.Date(2026, 11, 22, 2, 0, 0, 123e6, time.UTC)
	dec, _ := bson.ParseDecimal128("1234.5600")
	for _, tc := range []struct {
		v    any
		want string
		null bool
		time bool
	}{
		{int32(7), "7", false, false},
		{int64(1) << 40, "1099511627776", false, false},
		{2.5, "2.5", false, false},
		{dec, "1234.5600", false, false},
		{"x", "x", false, false},
		{true, "true", false, false},
		{bson.Null{}, "", true, false},
		{bson.NewDateTimeFromTime(at), "2026-11-22T02:00:00.123Z", false, true},
		{bson.Timestamp{T: uint32(at.Unix())}, "2026-11-22T02:00:00Z", false, true},
	} {
		typ, data, err := bson.MarshalValue(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		v := toValue(bson.RawValue{Type: typ, Value: data})
		if v.Text != tc.want || v.Null != tc.null || (v.Time != nil) != tc.time {
			t.Errorf("%v: %+v, want %q", tc.v, v, tc.want)
		}
	}
}

// A check's command carries maxTimeMS, the smaller of its own and the
// engine's bound, so the server stops it when the check gives up.
func TestWithMaxTime(t *testing.T) {
	doc := bson.D{{Key: "count", Value: "orders"}}
	got := withMaxTime(doc, 90*time.Second)
	want := bson.D{{Key: "count", Value: "orders"}, {Key: "maxTimeMS", Value: int64(90000)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("withMaxTime = %v, want %v", got, want)
	}
	own := bson.D{{Key: "count", Value: "orders"}, {Key: "maxTimeMS", Value: int32(500)}}
	if got := withMaxTime(own, time.Minute); !reflect.DeepEqual(got[len(got)-1], bson.E{Key: "maxTimeMS", Value: int64(500)}) || len(got) != 2 {
		t.Errorf("a smaller maxTimeMS of the query's own: %v", got)
	}
	big := bson.D{{Key: "count", Value: "orders"}, {Key: "maxTimeMS", Value: int64(1e9)}}
	if got := withMaxTime(big, time.Minute); !reflect.DeepEqual(got[len(got)-1], bson.E{Key: "maxTimeMS", Value: int64(60000)}) || len(got) != 2 {
		t.Errorf("a larger maxTimeMS of the query's own: %v", got)
	}
}
