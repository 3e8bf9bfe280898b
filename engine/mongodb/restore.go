package mongodb

import (
	"context"
	"crypto/rand"
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
	_, _, err = e.restore(ctx, client, path, "", opts.Clean, "")
	return err
}

// RestoreInto restores the archive at path into the deployment at dsn. When
// dsn names a database, the backup (which must then hold one database) is
// restored into it; otherwise each database under its own name.
//
// MongoDB has no transaction for this, so collections are loaded under
// temporary names and renamed into place once every one holds its
// documents and indexes; with opts.Clean (restore --force) the rename
// replaces the collection of the same name. A restore that fails before
// that drops what it loaded and leaves the target as it was.
func (e *Engine) RestoreInto(ctx context.Context, dsn, path string, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	_, into, _ := splitURI(dsn)
	client, err := connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to restore target %s: %w", e.Describe(dsn), err)
	}
	defer disconnect(ctx, client)
	staging, err := stagingPrefix()
	if err != nil {
		return err
	}
	plan, created, err := e.restore(ctx, client, path, into, opts.Clean, staging)
	if err == nil {
		return promote(ctx, client, plan, staging, opts.Clean)
	}
	if len(created) == 0 {
		return fmt.Errorf("%w; the target is as it was", err)
	}
	if derr := dropAll(context.WithoutCancel(ctx), client, created); derr != nil {
		return fmt.Errorf("%w; the target's own collections are untouched, but dropping the %d it had loaded under temporary names failed, drop them by hand (%s): %v",
			err, len(created), names(created), derr)
	}
	return fmt.Errorf("%w; the target is as it was (the %d collections loaded under temporary names were dropped)", err, len(created))
}

// stagingPrefix is the prefix of the temporary names of one restore.
func stagingPrefix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("backproof_restore_%x_", b), nil
}

// promote renames the staged collections of plan into place and then
// creates the views. When clean, what holds a name of the plan is set aside
// under a temporary name first and dropped only once every collection is
// in place; if a rename fails, what was set aside is put back. (renameCollection
// with dropTarget would be shorter, but FerretDB does not implement it.)
func promote(ctx context.Context, client *mongo.Client, plan []*target, staging string, clean bool) error {
	var views, staged []*target
	for _, t := range plan {
		if t.typ == typeView {
			views = append(views, t)
		} else {
			staged = append(staged, t)
		}
	}
	existing, err := existingNames(ctx, client, plan)
	if err != nil {
		return err
	}
	rename := func(db, from, to string) error {
		cmd := bson.D{{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: db + "." + to}}
		if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
			return serverErr(ctx, fmt.Sprintf("rename %s.%s to %s", db, from, to), err)
		}
		return nil
	}
	var aside, done []*target // set aside (under staging+"old_"+name); renamed into place
	undo := func(err error) error {
		bg := context.WithoutCancel(ctx)
		var errs []error
		if derr := dropAll(bg, client, done); derr != nil {
			errs = append(errs, derr)
		}
		for _, t := range aside {
			if rerr := rename(t.db, staging+"old_"+t.final, t.final); rerr != nil {
				errs = append(errs, rerr)
			}
		}
		if derr := dropAll(bg, client, staged[len(done):]); derr != nil {
			errs = append(errs, derr)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w; putting the target back failed too, look for collections named %s*: %w", err, staging, errors.Join(errs...))
		}
		return fmt.Errorf("%w; the target is as it was", err)
	}
	for _, t := range staged {
		switch existing[t.db+"."+t.final] {
		case typeView:
			return undo(fmt.Errorf("%w: %s is a view on the target and a collection in the backup", engine.ErrRestore, t.db+"."+t.final))
		case "":
		default:
			if !clean {
				return undo(fmt.Errorf("%w: %s.%s exists on the target", engine.ErrRestore, t.db, t.final))
			}
			if err := rename(t.db, t.final, staging+"old_"+t.final); err != nil {
				return undo(err)
			}
			aside = append(aside, &target{db: t.db, name: staging + "old_" + t.final, final: t.final, typ: typeCollection})
		}
		if err := rename(t.db, t.name, t.final); err != nil {
			return undo(err)
		}
		t.name = t.final
		done = append(done, t)
	}
	var drop []*target
	for _, t := range views {
		if existing[t.db+"."+t.final] == typeView && clean {
			drop = append(drop, &target{db: t.db, name: t.final, typ: typeView})
		}
	}
	if err := dropAll(ctx, client, append(drop, aside...)); err != nil {
		return fmt.Errorf("every collection was restored, but dropping what it replaced failed (%s): %w", names(aside), err)
	}
	for _, t := range views {
		if err := create(ctx, client, t); err != nil {
			return fmt.Errorf("%w; every collection was restored, the views from %s on were not", err, t.ns())
		}
	}
	return nil
}

// existingNames maps db.name to "collection" or "view" for every name of
// plan that the target already has.
func existingNames(ctx context.Context, client *mongo.Client, plan []*target) (map[string]string, error) {
	byDB := map[string][]string{}
	for _, t := range plan {
		byDB[t.db] = append(byDB[t.db], t.final)
	}
	out := map[string]string{}
	for db, want := range byDB {
		specs, err := client.Database(db).ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: want}}}})
		if err != nil {
			return nil, serverErr(ctx, "list collections of "+db, err)
		}
		for _, c := range specs {
			out[db+"."+c.Name] = c.Type
		}
	}
	return out, nil
}

// target is a namespace of the archive and where it is restored.
type target struct {
	src      string // db.collection in the archive
	db, name string
	final    string // the name it has once restored
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
		t := &target{src: c.Namespace(), db: c.DB, name: c.Collection, final: c.Collection, typ: m.Type, options: m.Options, indexes: m.Indexes}
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

// restore loads the archive at path through client. With a staging
// prefix, collections are created under prefixed names and views are left
// for promote; without, when clean, what has the plan's names is dropped
// first. It returns the plan and the namespaces it created, for a caller
// that wants to undo them.
func (e *Engine) restore(ctx context.Context, client *mongo.Client, path, into string, clean bool, staging string) (plan, created []*target, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := archive.NewReader(f)
	if err != nil {
		return nil, nil, archiveErr(err)
	}
	plan, err = planRestore(r.Prelude, into)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	if staging != "" {
		for _, t := range plan {
			if t.typ == typeCollection {
				t.name = staging + t.final
			}
		}
	} else if clean {
		if err := dropAll(ctx, client, plan); err != nil {
			return plan, nil, err
		}
	}
	// Collections first, with their options; views once their sources
	// hold data and indexes.
	for _, t := range plan {
		if t.typ == typeCollection {
			if err := create(ctx, client, t); err != nil {
				return plan, created, err
			}
			created = append(created, t)
		}
	}
	if err := e.load(ctx, client, r, plan); err != nil {
		return plan, created, err
	}
	for _, t := range plan {
		if t.typ == typeCollection {
			if err := createIndexes(ctx, client, t); err != nil {
				return plan, created, err
			}
		}
	}
	for _, t := range plan {
		if t.typ == typeView && staging == "" {
			if err := create(ctx, client, t); err != nil {
				return plan, created, err
			}
			created = append(created, t)
		}
	}
	var docs int64
	for _, t := range plan {
		docs += t.docs
	}
	e.log.DebugContext(ctx, "restore finished", "namespaces", len(plan), "documents", docs, "seconds", time.Since(start).Seconds())
	return plan, created, nil
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
