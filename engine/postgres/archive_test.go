package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/testenv"
)

// awkwardRows has every kind of table data the row count must get right:
// values with newlines, tabs and backslashes, a table without columns,
// partitions, generated columns, bytea with newline bytes, large objects
// between the tables' data, and a table large enough to span many reads.
const awkwardRows = `
CREATE SCHEMA "we""ird schema";
CREATE TABLE "we""ird schema"."new
line" (id int, t text);
INSERT INTO "we""ird schema"."new
line" VALUES (1, E'a\nb\tc\\d\r\n'), (2, NULL), (3, ''), (4, E'\\.');
CREATE TABLE empty (id int);
CREATE TABLE nocols ();
INSERT INTO nocols SELECT FROM generate_series(1, 5);
CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (100) TO (200);
INSERT INTO parted SELECT g, g % 200 FROM generate_series(1, 999) g;
CREATE UNLOGGED TABLE scratch (id int);
INSERT INTO scratch SELECT generate_series(1, 7);
CREATE TABLE gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED);
INSERT INTO gen (a) SELECT generate_series(1, 11);
CREATE TABLE bin (b bytea);
INSERT INTO bin VALUES ('\x0a0d0a00'), (decode(repeat('0a', 5000), 'hex'));
SELECT lo_from_bytea(0, decode(repeat('0a', 3000), 'hex')) FROM generate_series(1, 3);
CREATE TABLE big (id int, note text);
INSERT INTO big SELECT g, repeat(md5(g::text), 8) || E'\n' FROM generate_series(1, 60000) g;
`

// The rows counted in a real pg_dump archive of every server's major (archive
// versions 1.14 and 1.16) are exactly count(*) of every table.
func TestArchiveRows(t *testing.T) {
	for _, srv := range testenv.PostgresServers {
		t.Run(srv.Name(), func(t *testing.T) {
			ctx := context.Background()
			dsn := srv.NewDB(t)
			testenv.Exec(t, dsn, awkwardRows)
			want := serverCounts(t, dsn)

			var dump bytes.Buffer
			info, err := New(dsn, WithBinDirs(srv.Tools(t))).Dump(ctx, &dump)
			if err != nil {
				t.Fatal(err)
			}
			got, err := archiveRows(bytes.NewReader(dump.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			for key, n := range want {
				if m, ok := got[key]; !ok || m != n {
					t.Errorf("archive: %q.%q has %d rows (found: %v), want %d", key.schema, key.name, m, ok, n)
				}
			}
			if len(info.Source.Tables) != len(want) {
				t.Errorf("dump recorded %d tables, want %d", len(info.Source.Tables), len(want))
			}
			for _, tbl := range info.Source.Tables {
				if n := want[tableKey{tbl.Schema, tbl.Name}]; tbl.Rows != n {
					t.Errorf("dump recorded %q.%q with %d rows, want %d", tbl.Schema, tbl.Name, tbl.Rows, n)
				}
			}

			// With no archive to count from, every table is counted in
			// the snapshot.
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			tables := make([]engine.TableStats, len(info.Source.Tables))
			for i, tbl := range info.Source.Tables {
				tables[i] = engine.TableStats{Schema: tbl.Schema, Name: tbl.Name}
			}
			partial := map[tableKey]int64{{"public", "big"}: 60000}
			if err := New(dsn).setRows(ctx, tx, tables, partial, nil); err != nil {
				t.Fatal(err)
			}
			for _, tbl := range tables {
				if n := want[tableKey{tbl.Schema, tbl.Name}]; tbl.Rows != n {
					t.Errorf("counted on the server: %q.%q has %d rows, want %d", tbl.Schema, tbl.Name, tbl.Rows, n)
				}
			}
		})
	}
}

func serverCounts(t *testing.T, dsn string) map[tableKey]int64 {
	t.Helper()
	counts := countsOf(t, dsn)
	if len(counts) != 9 || counts[tableKey{"public", "big"}] != 60000 {
		t.Fatalf("seeded tables: %v", counts)
	}
	return counts
}

// countsOf is count(*) of every table of the database at dsn.
func countsOf(t *testing.T, dsn string) map[tableKey]int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tables, err := listTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := countRows(ctx, conn, tables); err != nil {
		t.Fatal(err)
	}
	counts := map[tableKey]int64{}
	for _, tbl := range tables {
		counts[tableKey{tbl.Schema, tbl.Name}] = tbl.Rows
	}
	return counts
}

// An archive the reader does not know, or one cut short, is a layout error,
// and every byte of it still reaches the writer behind the reader.
func TestArchiveRowsUnknownLayout(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewPostgresDB(t)
	testenv.Exec(t, dsn, awkwardRows)
	var dump bytes.Buffer
	if _, err := New(dsn, WithBinDirs(testenv.PostgresBin(t))).Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	archive := dump.Bytes()
	newer := bytes.Clone(archive)
	newer[6] = archiveMaxMinor + 1
	compressed := bytes.Clone(archive)
	if compressed[6] < 15 {
		compressed[12] = 6 // the level's low byte, after its sign byte
	} else {
		compressed[11] = 1
	}
	for name, in := range map[string][]byte{
		"newer version":  newer,
		"compressed":     compressed,
		"cut in the toc": archive[:200],
		"cut in data":    archive[:len(archive)/2],
		"not an archive": []byte("PGDMQ and the rest"),
		"empty":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			var passed bytes.Buffer
			rows, err := archiveRows(io.TeeReader(bytes.NewReader(in), &passed))
			if !errors.Is(err, errArchiveLayout) || rows != nil {
				t.Errorf("got %v, %v; want a layout error", rows, err)
			}
			if !bytes.Equal(passed.Bytes(), in) {
				t.Errorf("passed on %d of %d bytes", passed.Len(), len(in))
			}
		})
	}

	// A failing writer behind the reader is that writer's error.
	broken := errors.New("disk full")
	_, err := archiveRows(io.TeeReader(bytes.NewReader(archive), failingWriter{broken}))
	if !errors.Is(err, broken) {
		t.Errorf("got %v, want %v", err, broken)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestAfterMarker(t *testing.T) {
	for data, want := range map[string]int64{
		"1\tx\n\\.\n\n\n":     3, // pg_dump's end of data
		"\\.\n\n\n":           3, // an empty table
		"\n\n\n\\.\n\n\n":     3, // three rows of a table without columns
		"1\t\\\\.\n\\.\n\n\n": 3, // a last value of "\."
		"1\t\\\\.\n":          0, // the same without the marker
		"1\tx\n":              0,
		"\n\n":                0,
		"":                    0,
		"\\.":                 0, // no newline after the marker: not ended
	} {
		if got := afterMarker([]byte(data)); got != want {
			t.Errorf("afterMarker(%q) = %d, want %d", data, got, want)
		}
	}
}

// Whatever the stream, the reader passes every byte on, ends, and counts no
// table below zero. Seeds: real archives of pg_dump 15 and 18 (testdata).
func FuzzArchiveRows(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x10\x00\x04\x08\x01\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var passed bytes.Buffer
		rows, err := archiveRows(io.TeeReader(bytes.NewReader(in), &passed))
		if !bytes.Equal(passed.Bytes(), in) {
			t.Fatalf("passed on %d of %d bytes", passed.Len(), len(in))
		}
		if err != nil && !errors.Is(err, errArchiveLayout) {
			t.Fatalf("error other than layout: %v", err)
		}
		for key, n := range rows {
			if n < 0 {
				t.Fatalf("%v: %d rows", key, n)
			}
		}

		// Offsets set where blocks are: the same archive, with no offset
		// left unset that has a block.
		ix, err := indexData(bytes.NewReader(in))
		if err != nil {
			return
		}
		patched := writerAt(bytes.Clone(in))
		if _, err := ix.writeOffsets(patched); err != nil {
			t.Fatal(err)
		}
		again, err := indexData(bytes.NewReader(patched))
		if err != nil {
			t.Fatalf("the archive with its offsets set no longer reads: %v", err)
		}
		if !maps.Equal(again.blocks, ix.blocks) {
			t.Fatalf("blocks moved: %v, then %v", ix.blocks, again.blocks)
		}
		for id := range again.unset {
			if _, ok := again.blocks[id]; ok && ix.offSize == 8 {
				t.Fatalf("entry %d: offset still unset", id)
			}
		}
	})
}

// writerAt writes into a byte slice of fixed length.
type writerAt []byte

func (w writerAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(w)) {
		return 0, io.ErrShortWrite
	}
	return copy(w[off:], p), nil
}

// An archive pg_dump wrote to a pipe, once its data offsets are set, is
// byte for byte the archive pg_dump writes to a file (up to the creation
// time in the header), and restores with parallel jobs. One whose data is
// mostly one table restores with one job, and is left as it is.
func TestParallelRestore(t *testing.T) {
	for _, srv := range testenv.PostgresServers {
		t.Run(srv.Name(), func(t *testing.T) {
			ctx := context.Background()
			dsn := srv.NewDB(t)
			testenv.Exec(t, dsn, awkwardRows)
			e := New(dsn, WithBinDirs(srv.Tools(t)))

			// "big" holds most of the data.
			spool, info, _ := dumpTwice(t, srv, e, dsn)
			before, err := os.ReadFile(spool)
			if err != nil {
				t.Fatal(err)
			}
			if jobs, err := e.parallel(ctx, spool, 2); err != nil || jobs != 1 {
				t.Fatalf("one table of most data: %d jobs (%v), want 1", jobs, err)
			}
			if after, err := os.ReadFile(spool); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the archive changed for one job (%v)", err)
			}

			// Two tables share it out.
			testenv.Exec(t, dsn, `CREATE TABLE big2 AS SELECT * FROM big`)
			spool, info, want := dumpTwice(t, srv, e, dsn)
			if jobs, err := e.parallel(ctx, spool, 2); err != nil || jobs != 2 {
				t.Fatalf("two tables: %d jobs (%v), want 2", jobs, err)
			}
			got, err := os.ReadFile(spool)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(maskCreated(t, got), maskCreated(t, want)) {
				t.Fatal("the archive with its offsets set differs from pg_dump's own file")
			}
			ix, err := indexData(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if len(ix.unset) != 0 || len(ix.blocks) != 11 { // 10 tables and the large objects
				t.Errorf("after: %d offsets unset, %d blocks, want 0 and 11", len(ix.unset), len(ix.blocks))
			}

			target := srv.NewDB(t)
			if err := e.RestoreInto(ctx, target, spool, info, engine.RestoreOptions{Jobs: 2}); err != nil {
				t.Fatal(err)
			}
			if got, want := countsOf(t, target), countsOf(t, dsn); !maps.Equal(got, want) {
				t.Errorf("restored with 2 jobs: %v, want %v", got, want)
			}
		})
	}
}

// dumpTwice dumps the database at dsn as a backup does, through a pipe,
// into a spool file whose path it returns, and as pg_dump does into a file
// it can seek in, whose bytes it returns. The piped archive must lack its
// data offsets.
func dumpTwice(t *testing.T, srv testenv.PostgresServer, e *Engine, dsn string) (string, *engine.DumpInfo, []byte) {
	t.Helper()
	dir := t.TempDir()
	var piped bytes.Buffer
	info, err := e.Dump(context.Background(), &piped)
	if err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "spool.pgdump")
	if err := os.WriteFile(spool, piped.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dbArg, password, err := splitPassword(dsn)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file.pgdump")
	dump := command(context.Background(), filepath.Join(srv.Tools(t), "pg_dump"), password,
		"--format=custom", "--compress=0", "--no-password", "--file="+file, "--dbname="+dbArg)
	if out, err := dump.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump --file: %v: %s", err, out)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(maskCreated(t, piped.Bytes()), maskCreated(t, want)) {
		t.Fatal("the piped archive already has its data offsets")
	}
	return spool, info, want
}

// The sizes of data blocks run from one block's start to the next's, the
// last to the archive's end.
func TestDataIndexLargest(t *testing.T) {
	ix := &dataIndex{size: 1000, blocks: map[int64]int64{7: 350, 3: 100, 5: 300}}
	if largest, all := ix.largest(); largest != 650 || all != 900 {
		t.Errorf("largest() = %d, %d, want 650, 900", largest, all)
	}
	if largest, all := (&dataIndex{size: 10}).largest(); largest != 0 || all != 0 {
		t.Errorf("no blocks: largest() = %d, %d", largest, all)
	}
}

// maskCreated zeroes the creation time in an archive's header.
func maskCreated(t *testing.T, archive []byte) []byte {
	t.Helper()
	if len(archive) < 11 {
		t.Fatalf("archive of %d bytes", len(archive))
	}
	minor, intSize := int(archive[6]), 1+int(archive[8])
	at := 11 + intSize // the compression, an integer before 1.15
	if minor >= 15 {
		at = 12
	}
	out := bytes.Clone(archive)
	clear(out[at : at+7*intSize])
	return out
}

// A damaged spool fails the parallel restore as a backup the restore
// rejects; a cancelled one stops before writing anything.
func TestParallelRestoreBadSpool(t *testing.T) {
	srv := testenv.PostgresServers[0]
	ctx := context.Background()
	dsn := srv.NewDB(t)
	testenv.Exec(t, dsn, awkwardRows+`CREATE TABLE big2 AS SELECT * FROM big;`)
	e := New(dsn, WithBinDirs(srv.Tools(t)))
	spool, info, _ := dumpTwice(t, srv, e, dsn)
	good, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}

	// Cut in the middle of the data: the walk finds no layout it knows,
	// pg_restore gets the file as it is and rejects it.
	cut := filepath.Join(t.TempDir(), "cut.pgdump")
	if err := os.WriteFile(cut, good[:len(good)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	target := srv.NewDB(t)
	err = e.RestoreInto(ctx, target, cut, info, engine.RestoreOptions{Jobs: 2})
	if !errors.Is(err, engine.ErrRestore) {
		t.Errorf("a spool cut short: %v, want ErrRestore", err)
	}

	// A cancelled restore stops its walk and leaves the spool as it was.
	cctx, cancel := context.WithCancelCause(ctx)
	cancel(errors.New("stopped by the test"))
	if _, err := e.parallel(cctx, spool, 2); err == nil || !strings.Contains(err.Error(), "stopped by the test") {
		t.Errorf("cancelled walk: %v, want the cause", err)
	}
	if after, err := os.ReadFile(spool); err != nil || !bytes.Equal(after, good) {
		t.Errorf("the spool changed under a cancelled walk (%v)", err)
	}
}
