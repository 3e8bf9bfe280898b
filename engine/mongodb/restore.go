package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/archive"
)

// Insert batches are bounded by both, well under the server's limits
// (100,000 documents, 48 MB messages).
const (
	maxBatchDocs  = 10000
	maxBatchBytes = 8 << 20
)

// Restore implements engine.Prover: the archive at path into the sandbox
// srv, each database under its own name.
func (e *Engine) Restore(ctx context.Context, srv engine.Server, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	client, err := connect(ctx, ConnString(srv))
	if err != nil {
		return fmt.Errorf("connect to sandbox: %w", err)
	}
	defer disconnect(ctx, client)
	_, err = e.restore(ctx, client, path, "", opts.Clean)
	return err
}

// RestoreInto restores the archive at path into the deployment at dsn. When
// dsn names a database, the backup (which must then hold one database) is
// restored into it; otherwise each database under its own name. MongoDB
// has no transaction for this: when the restore fails, the collections it
// created are dropped again, so the target holds nothing of it.
func (e *Engine) RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	_, into, _ := splitURI(dsn)
	client, err := connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to restore target %s: %w", e.Describe(dsn), err)
	}
	defer disconnect(ctx, client)
	created, err := e.restore(ctx, client, path, into, opts.Clean)
	if err == nil {
		return nil
	}
	replaced := ""
	if opts.Clean {
		replaced = "; the collections of the same names it dropped before are gone"
	}
	if len(created) == 0 {
		return fmt.Errorf("%w; it created nothing on the target%s", err, replaced)
	}
	if derr := dropAll(context.WithoutCancel(ctx), client, created); derr != nil {
		return fmt.Errorf("%w; dropping the %d collections it had created failed too, drop them by hand (%s): %v%s",
			err, len(created), names(created), derr, replaced)
	}
	return fmt.Errorf("%w; the %d collections it had created were dropped again%s", err, len(created), replaced)
}

// target is a namespace of the archive and where it is restored.
type target struct {
	src      string // db.collection in the archive
	db, name string
	typ      string
	options  bson.Raw
	indexes  []bson.Raw
	docs     int64
}

func (t *target) ns() string { return t.db + "." + t.name }

// metadata is a prelude entry's metadata, as mongodump writes it.
type metadata struct {
	Options bson.Raw   `bson:"options"`
	Indexes []bson.Raw `bson:"indexes"`
	Type    string     `bson:"type"`
}

// planRestore reads the prelude's metadata and decides where each
// namespace goes: into `into` when set, which needs a one-database archive.
func planRestore(prelude []archive.Collection, into string) ([]*target, error) {
	var dbs []string
	for _, c := range prelude {
		if !slices.Contains(dbs, c.DB) {
			dbs = append(dbs, c.DB)
		}
	}
	if into != "" && len(dbs) > 1 {
		return nil, fmt.Errorf("the backup holds %d databases (%s) and the target names one (%s): name none to restore each under its own name",
			len(dbs), strings.Join(dbs, ", "), into)
	}
	var plan []*target
	for _, c := range prelude {
		var m metadata
		if err := bson.UnmarshalExtJSON([]byte(c.Metadata), false, &m); err != nil {
			return nil, fmt.Errorf("%w: metadata of %s: %v", engine.ErrRestore, c.Namespace(), err)
		}
		t := &target{src: c.Namespace(), db: c.DB, name: c.Collection, typ: m.Type, options: m.Options, indexes: m.Indexes}
		if t.typ == "" {
			t.typ = c.Type
		}
		if t.typ == "" {
			t.typ = typeCollection
		}
		if t.typ != typeCollection && t.typ != typeView {
			return nil, fmt.Errorf("%w: %s is a %s, which this version of backproof cannot restore", engine.ErrRestore, c.Namespace(), t.typ)
		}
		if into != "" {
			t.db = into
		}
		plan = append(plan, t)
	}
	return plan, nil
}

// restore loads the archive at path through client. It returns the
// namespaces it created, for a caller that wants to undo them.
func (e *Engine) restore(ctx context.Context, client *mongo.Client, path, into string, clean bool) (created []*target, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := archive.NewReader(f)
	if err != nil {
		return nil, archiveErr(err)
	}
	plan, err := planRestore(r.Prelude, into)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if clean {
		if err := dropAll(ctx, client, plan); err != nil {
			return nil, err
		}
	}
	// Collections first, with their options; views once their sources
	// hold data and indexes.
	for _, t := range plan {
		if t.typ == typeCollection {
			if err := create(ctx, client, t); err != nil {
				return created, err
			}
			created = append(created, t)
		}
	}
	if err := e.load(ctx, client, r, plan); err != nil {
		return created, err
	}
	for _, t := range plan {
		if t.typ == typeCollection {
			if err := createIndexes(ctx, client, t); err != nil {
				return created, err
			}
		}
	}
	for _, t := range plan {
		if t.typ == typeView {
			if err := create(ctx, client, t); err != nil {
				return created, err
			}
			created = append(created, t)
		}
	}
	var docs int64
	for _, t := range plan {
		docs += t.docs
	}
	e.log.DebugContext(ctx, "restore finished", "namespaces", len(plan), "documents", docs, "seconds", time.Since(start).Seconds())
	return created, nil
}

// load inserts every document of the archive, in archive order, in
// batches.
func (e *Engine) load(ctx context.Context, client *mongo.Client, r *archive.Reader, plan []*target) error {
	bySrc := make(map[string]*target, len(plan))
	for _, t := range plan {
		bySrc[t.src] = t
	}
	var (
		cur   *target
		batch []bson.Raw
		arena = make([]byte, 0, maxBatchBytes)
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		coll := client.Database(cur.db).Collection(cur.name)
		_, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(true).SetBypassDocumentValidation(true))
		if err != nil {
			return serverErr(ctx, fmt.Sprintf("insert into %s", cur.ns()), err)
		}
		batch, arena = batch[:0], arena[:0]
		return nil
	}
	for {
		it, err := r.Next()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return archiveErr(err)
		}
		t := bySrc[it.DB+"."+it.Collection]
		if it.EOF {
			if t == cur {
				if err := flush(); err != nil {
					return err
				}
			}
			t.docs = it.Docs
			continue
		}
		if t.typ == typeView {
			return fmt.Errorf("%w: the archive holds documents for view %s", engine.ErrRestore, t.src)
		}
		if t != cur {
			if err := flush(); err != nil {
				return err
			}
			cur = t
		}
		if len(arena)+len(it.Doc) > cap(arena) {
			if err := flush(); err != nil {
				return err
			}
			if len(it.Doc) > cap(arena) {
				arena = make([]byte, 0, len(it.Doc))
			}
		}
		n := len(arena)
		arena = append(arena, it.Doc...)
		batch = append(batch, arena[n:len(arena):len(arena)])
		if len(batch) >= maxBatchDocs {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// create creates a collection or view with the options it had.
func create(ctx context.Context, client *mongo.Client, t *target) error {
	cmd, err := createCommand(t)
	if err != nil {
		return err
	}
	if err := client.Database(t.db).RunCommand(ctx, cmd).Err(); err != nil {
		return serverErr(ctx, fmt.Sprintf("create %s %s", t.typ, t.ns()), err)
	}
	return nil
}

// createCommand is the create command for a collection or view: its
// listCollections options as they were (validator, collation, capped,
// viewOn and pipeline, ...).
func createCommand(t *target) (bson.D, error) {
	cmd := bson.D{{Key: "create", Value: t.name}}
	elems, err := t.options.Elements()
	if err != nil {
		return nil, fmt.Errorf("%w: options of %s: %v", engine.ErrRestore, t.src, err)
	}
	for _, el := range elems {
		if el.Key() == "autoIndexId" { // obsolete since MongoDB 4.0
			continue
		}
		cmd = append(cmd, bson.E{Key: el.Key(), Value: el.Value()})
	}
	return cmd, nil
}

// createIndexes builds a collection's indexes.
func createIndexes(ctx context.Context, client *mongo.Client, t *target) error {
	cmd, err := indexCommand(t)
	if err != nil || cmd == nil {
		return err
	}
	if err := client.Database(t.db).RunCommand(ctx, cmd).Err(); err != nil {
		return serverErr(ctx, fmt.Sprintf("create indexes of %s", t.ns()), err)
	}
	return nil
}

// indexCommand is the createIndexes command for every index but _id's,
// which came with the collection, or nil when there is none. Like
// mongorestore it drops the index version ("v": the server picks its own)
// and the legacy "ns", and keeps every other option.
func indexCommand(t *target) (bson.D, error) {
	var specs bson.A
	for _, spec := range t.indexes {
		if indexName(spec) == "_id_" {
			continue
		}
		elems, err := spec.Elements()
		if err != nil {
			return nil, fmt.Errorf("%w: index spec of %s: %v", engine.ErrRestore, t.src, err)
		}
		var d bson.D
		for _, el := range elems {
			if k := el.Key(); k != "v" && k != "ns" {
				d = append(d, bson.E{Key: k, Value: el.Value()})
			}
		}
		specs = append(specs, d)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	return bson.D{{Key: "createIndexes", Value: t.name}, {Key: "indexes", Value: specs}, {Key: "ignoreUnknownIndexOptions", Value: true}}, nil
}

// dropAll drops the given namespaces, views first.
func dropAll(ctx context.Context, client *mongo.Client, ts []*target) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for _, views := range []bool{true, false} {
		for _, t := range ts {
			if (t.typ == typeView) == views {
				if err := client.Database(t.db).Collection(t.name).Drop(ctx); err != nil {
					errs = append(errs, fmt.Errorf("drop %s: %w", t.ns(), err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func names(ts []*target) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.ns())
	}
	if len(s) > 5 {
		s = append(s[:5], fmt.Sprintf("and %d more", len(s)-5))
	}
	return strings.Join(s, ", ")
}

func archiveErr(err error) error {
	if errors.Is(err, archive.ErrFormat) {
		return fmt.Errorf("%w: %w", engine.ErrRestore, err)
	}
	return err
}

// infraCodes are server error codes that say nothing about the backup: the
// server is going away, lacks the feature, or denied access.
var infraCodes = []int{
	6, 7, 89, 9001, // host unreachable, not found, network timeout, socket
	11600, 11602, 91, 189, 10107, 13435, // shutdown, step-down, not primary
	13, 18, // unauthorized, authentication failed
	50, 262, // time limits
	59, 115, 238, // command not found, not supported, not implemented
	14031, // out of disk space
}

// serverErr marks what the server rejected about the backup's content as
// engine.ErrRestore; anything about the server itself stays operational.
func serverErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	var se mongo.ServerError
	if !errors.As(err, &se) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) || se.HasErrorLabel("RetryableWriteError") {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, c := range infraCodes {
		if se.HasErrorCode(c) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", engine.ErrRestore, op, err)
}
