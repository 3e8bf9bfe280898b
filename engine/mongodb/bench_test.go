package mongodb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// Dump and restore throughput against the test server (scripts/testenv.sh):
//
//	. /tmp/backproof-testenv/env
//	go test -run '^$' -bench . -benchtime 3x ./engine/mongodb/
//
// BACKPROOF_BENCH_ORDERS sets the size (default 50000 orders: 70,000
// documents). FloorFind reads the same documents with bare finds, the
// fastest any dump from this server can be.
// The benchmarks share one seeded database, dropped when the process ends.
var bench struct {
	once sync.Once
	uri  string
	docs int64
	err  error
}

func benchSource(b *testing.B) (uri string, docs int64) {
	b.Helper()
	orders := 50000
	if s := os.Getenv("BACKPROOF_BENCH_ORDERS"); s != "" {
		var err error
		if orders, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	admin := testenv.MongoURI(b) // skips (or fails, strict) without the server
	bench.once.Do(func() {
		u, err := url.Parse(admin)
		if err != nil {
			bench.err = err
			return
		}
		u.Path = fmt.Sprintf("/bp_bench_%d", os.Getpid())
		bench.uri = u.String()
		if _, bench.err = sample.SeedMongo(context.Background(), bench.uri, orders); bench.err != nil {
			return
		}
		counts, err := sample.MongoCounts(context.Background(), bench.uri)
		for _, n := range counts {
			bench.docs += n
		}
		if bench.err = err; err == nil {
			// Warm the server's caches, or the first benchmark pays for it.
			_, bench.err = New(bench.uri).Dump(context.Background(), &countingWriter{})
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.uri, bench.docs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.uri != "" {
		if c, err := mongo.Connect(options.Client().ApplyURI(bench.uri)); err == nil {
			_ = c.Database(strings.TrimPrefix(mustURL(bench.uri).Path, "/")).Drop(context.Background())
			_ = c.Disconnect(context.Background())
		}
	}
	os.Exit(code)
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func report(b *testing.B, docs, bytes int64, d time.Duration) {
	b.ReportMetric(float64(docs)/d.Seconds(), "docs/s")
	b.ReportMetric(float64(bytes)/d.Seconds()/(1<<20), "MiB/s")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB")
}

func BenchmarkDump(b *testing.B) {
	uri, docs := benchSource(b)
	e := New(uri)
	var total time.Duration
	var size int64
	for b.Loop() {
		w := &countingWriter{}
		start := time.Now()
		if _, err := e.Dump(context.Background(), w); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		size = w.n
	}
	report(b, docs, size, total/time.Duration(b.N))
}

func BenchmarkFloorFind(b *testing.B) {
	uri, docs := benchSource(b)
	ctx := context.Background()
	db := testenv.MongoClient(b, uri).Database(dbOf(b, uri))
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	var size int64
	for b.Loop() {
		size = 0
		start := time.Now()
		for _, n := range names {
			cur, err := db.Collection(n).Find(ctx, bson.D{})
			if err != nil {
				b.Fatal(err)
			}
			for cur.Next(ctx) {
				size += int64(len(cur.Current))
			}
			if err := cur.Err(); err != nil {
				b.Fatal(err)
			}
			cur.Close(ctx)
		}
		total += time.Since(start)
	}
	report(b, docs, size, total/time.Duration(b.N))
}

func BenchmarkRestore(b *testing.B) {
	uri, docs := benchSource(b)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "dump.archive")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	info, err := New(uri).Dump(ctx, f)
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(path)
	into := testenv.NewMongoDB(b)
	var total time.Duration
	for b.Loop() {
		testenv.DropMongoDB(b, into)
		start := time.Now()
		if err := New("").RestoreInto(ctx, into, path, info, engine.RestoreOptions{Jobs: 1}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	report(b, docs, fi.Size(), total/time.Duration(b.N))
}
