package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis/rdb"
)

// Objects counts what a restore into the server at dsn could collide with:
// keys in every database, and function libraries.
func (e *Engine) Objects(ctx context.Context, dsn string) (int, error) {
	d, err := parseDSN(dsn)
	if err != nil {
		return 0, err
	}
	c, err := dial(ctx, d, time.Minute)
	if err != nil {
		return 0, fmt.Errorf("connect to restore target: %w", err)
	}
	defer c.close()
	tables, err := keyspace(c)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tables {
		n += int(t.Rows)
	}
	if libs, err := c.do("FUNCTION", "LIST"); err == nil { // Redis 7+
		n += len(libs.array)
	}
	return n, nil
}

// Batches of pipelined commands: a round trip per batch, not per key.
const (
	batchCommands = 512
	batchBytes    = 8 << 20
)

// RestoreInto writes the keys of the RDB file at path into the server at
// dsn: each key with RESTORE, from the value exactly as the file
// serializes it (the DUMP format: the RDB encoding plus the file's RDB
// version and a CRC-64), in its own database, with its expiry as an
// absolute time (ABSTTL), so TTLs carry over whatever time has passed.
// Keys whose expiry has passed are skipped, as a server loading the file
// would. Function libraries are loaded with FUNCTION LOAD.
//
// The file is walked whole before anything is written: a damaged file is
// refused (ErrRestore) and the target left untouched. opts.Clean replaces
// keys and libraries of the same name (RESTORE ... REPLACE, FUNCTION LOAD
// REPLACE); other keys stay. Redis has no transaction for this: a restore
// that fails midway leaves the keys written so far.
func (e *Engine) RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	d, err := parseDSN(dsn)
	if err != nil {
		return err
	}
	if err := checkFile(path); err != nil {
		return err
	}
	c, err := dial(ctx, d, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("connect to restore target: %w", err)
	}
	defer c.close()
	target, err := serverInfo(c)
	if err != nil {
		return fmt.Errorf("restore target: %w", err)
	}

	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var src io.Reader = f
	if opts.Progress != nil {
		src = io.TeeReader(f, opts.Progress)
	}
	rd, err := rdb.NewReader(bufio.NewReaderSize(src, 1<<20), true)
	if err != nil {
		return fmt.Errorf("%w: %w", engine.ErrRestore, err)
	}
	// A server refuses a RESTORE payload of an RDB version newer than it
	// reads: refuse the whole restore before the first key instead.
	if !target.readsRDB(rd.Version()) {
		return fmt.Errorf("the backup is RDB version %d (written by %s); the target runs %s, which cannot read it: restore into a server of the backup's flavor at least as new as its source; the target was not touched",
			rd.Version(), writtenBy(rd.Version()), target)
	}
	w := &restoreWriter{c: c, db: -1, replace: opts.Clean, version: rd.Version()}
	for {
		ent, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.failed(fmt.Errorf("%w: %w", engine.ErrRestore, err))
		}
		if err := w.add(ent); err != nil {
			return w.failed(err)
		}
	}
	if err := w.flush(); err != nil {
		return w.failed(err)
	}
	e.log.InfoContext(ctx, "restored", "target", d.String(), "keys", w.restored, "expired_skipped", w.expired, "functions", w.functions)
	return nil
}

// checkFile walks the whole file once: a restore must not begin on a file
// that turns out damaged or unreadable halfway.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := rdb.Scan(bufio.NewReaderSize(f, 1<<20))
	switch {
	case errors.Is(err, rdb.ErrCorrupt):
		return fmt.Errorf("%w: %w: %w; the target was not touched", engine.ErrRestore, engine.ErrCorrupt, err)
	case err != nil:
		return err
	case sum.Unreadable != nil:
		return fmt.Errorf("the backup holds content this build cannot restore key by key (%w); restore it into a sandbox, or put dump.rdb in place of the server's RDB file while it is stopped", sum.Unreadable)
	}
	return nil
}

// restoreWriter pipelines RESTORE commands.
type restoreWriter struct {
	c         *conn
	db        int
	replace   bool
	version   int
	pending   []string // what each command in flight restores, for errors
	bytes     int
	restored  int64
	expired   int64
	functions int
}

func (w *restoreWriter) add(e *rdb.Entry) error {
	switch e.Kind {
	case rdb.Function:
		args := [][]byte{[]byte("FUNCTION"), []byte("LOAD")}
		if w.replace {
			args = append(args, []byte("REPLACE"))
		}
		w.queue("a function library", append(args, e.Code)...)
		w.functions++
	case rdb.Key:
		if e.ExpireMs != 0 && e.ExpireMs <= time.Now().UnixMilli() {
			w.expired++
			return nil
		}
		if e.DB != w.db {
			w.queue("database "+strconv.Itoa(e.DB), []byte("SELECT"), []byte(strconv.Itoa(e.DB)))
			w.db = e.DB
		}
		args := [][]byte{[]byte("RESTORE"), e.Key, []byte(strconv.FormatInt(e.ExpireMs, 10)),
			rdb.DumpPayload(e.Type, e.Value, w.version)}
		if e.ExpireMs != 0 {
			args = append(args, []byte("ABSTTL"))
		}
		if w.replace {
			args = append(args, []byte("REPLACE"))
		}
		w.queue(fmt.Sprintf("%s key %s in db %d", rdb.TypeName(e.Type), quoteKey(e.Key), e.DB), args...)
		w.restored++
	}
	if len(w.pending) >= batchCommands || w.bytes >= batchBytes {
		return w.flush()
	}
	return nil
}

func (w *restoreWriter) queue(what string, args ...[]byte) {
	w.c.send(args...)
	w.pending = append(w.pending, what)
	for _, a := range args {
		w.bytes += len(a)
	}
}

// flush sends the batch and reads every reply; the first error reply fails
// the restore.
func (w *restoreWriter) flush() error {
	if err := w.c.flush(); err != nil {
		return err
	}
	var first error
	for _, what := range w.pending {
		_, err := w.c.receive()
		var se ServerError
		switch {
		case errors.As(err, &se):
			if first == nil {
				first = restoreError(what, se, w.version)
			}
		case err != nil:
			return err
		}
	}
	w.pending, w.bytes = w.pending[:0], 0
	return first
}

func (w *restoreWriter) failed(err error) error {
	return fmt.Errorf("%w; the keys restored so far stay in the target", err)
}

func restoreError(what string, se ServerError, version int) error {
	msg := se.Error()
	switch {
	case strings.HasPrefix(msg, "BUSYKEY"), strings.Contains(msg, "already exists"):
		return fmt.Errorf("restore %s: %w (pass --force to replace what the backup contains)", what, se)
	case strings.Contains(msg, "payload version or checksum are wrong"):
		return fmt.Errorf("restore %s: %w: the target Redis cannot read RDB version %d; restore into a server at least as new as the backup's source", what, se, version)
	}
	return fmt.Errorf("restore %s: %w", what, se)
}

// quoteKey shows a key in an error, shortened.
func quoteKey(k []byte) string {
	if len(k) > 64 {
		return strconv.Quote(string(k[:64])) + "..."
	}
	return strconv.Quote(string(k))
}
