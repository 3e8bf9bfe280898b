// Package mongodb backs up MongoDB through the Go driver alone, with no
// external tool: a dump is a mongodump archive (package archive) holding
// each collection's options and index specs and its documents as raw BSON,
// so the official `mongorestore --archive` can read it too. Restores go
// through the driver: collections with their options, documents in batches,
// indexes after the data, views last.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/version"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/archive"
)

// Engine dumps the databases of one MongoDB deployment.
type Engine struct {
	uri string
	log *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// New returns an engine for the deployment at uri (a mongodb:// or
// mongodb+srv:// connection string). When the URI names a database, only
// that database is backed up; otherwise every database but admin, local and
// config. The URI is a secret: it never reaches logs or errors.
func New(uri string, opts ...Option) *Engine {
	e := &Engine{uri: uri, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Artifact implements engine.Engine: `mongorestore --archive` reads the
// decompressed file.
func (e *Engine) Artifact() string { return "dump.archive" }

// ToolName is the key of the driver version in DumpInfo.Tools.
const ToolName = "mongo-go-driver"

// systemDatabases are never backed up unless the URI names one.
var systemDatabases = []string{"admin", "local", "config"}

// Dump implements engine.Engine. It lists every collection with its options
// and indexes, writes them as the archive's prelude, then streams each
// collection's documents, counting them: the recorded counts are those of
// the documents in the archive. Like mongodump without --oplog, the dump is
// not a point-in-time snapshot of a server that takes writes meanwhile.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engine.DumpInfo, error) {
	client, err := connect(ctx, e.uri)
	if err != nil {
		return nil, fmt.Errorf("connect to source %s: %w", e.Describe(e.uri), err)
	}
	defer disconnect(ctx, client)

	ver, err := serverVersion(ctx, client)
	if err != nil {
		return nil, err
	}
	dbs, err := e.databases(ctx, client)
	if err != nil {
		return nil, err
	}
	var colls []collection
	for _, db := range dbs {
		cs, err := listCollections(ctx, client.Database(db), true)
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 && len(dbs) == 1 {
			return nil, fmt.Errorf("database %q has no collections: nothing to back up (is the database name in the dsn right?)", db)
		}
		colls = append(colls, cs...)
	}
	if len(colls) == 0 {
		return nil, errors.New("no collections in any database: nothing to back up")
	}

	prelude := make([]archive.Collection, len(colls))
	for i, c := range colls {
		if prelude[i], err = c.archiveEntry(); err != nil {
			return nil, err
		}
	}
	aw := archive.NewWriter(w)
	err = aw.Prelude(archive.Header{
		ConcurrentCollections: 1,
		ServerVersion:         ver,
		ToolVersion:           "backproof (" + ToolName + " " + version.Driver + ")",
	}, prelude)
	if err != nil {
		return nil, fmt.Errorf("write dump stream: %w", err)
	}

	stats := engine.SourceStats{Objects: map[string][]string{}}
	for i := range colls {
		if ctx.Err() != nil {
			break
		}
		c := &colls[i]
		ns := aw.Namespace(c.db, c.name)
		if !c.isView() {
			if err := e.dumpCollection(ctx, client, c, ns); err != nil {
				return nil, err
			}
		}
		if err := ns.Close(); err != nil {
			return nil, fmt.Errorf("write dump stream: %w", err)
		}
		docs, _ := ns.Count()
		c.docs = docs
		c.addTo(&stats)
	}
	if err := aw.Flush(); err != nil {
		return nil, fmt.Errorf("write dump stream: %w", err)
	}
	// A collection small enough for one batch never asks the server again:
	// a cancelled dump must not pass for a finished one.
	if ctx.Err() != nil {
		return nil, fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
	}
	sortStats(&stats)
	return &engine.DumpInfo{
		ServerVersion: ver,
		Tools:         map[string]string{ToolName: version.Driver},
		Source:        stats,
	}, nil
}

// dumpCollection streams one collection's documents into ns.
func (e *Engine) dumpCollection(ctx context.Context, client *mongo.Client, c *collection, ns *archive.NamespaceWriter) error {
	start := time.Now()
	cur, err := client.Database(c.db).Collection(c.name).Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("read %s.%s: %w", c.db, c.name, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if err := ns.Write(cur.Current); err != nil {
			return fmt.Errorf("write dump stream: %w", err)
		}
	}
	if err := cur.Err(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("dump cancelled: %w", context.Cause(ctx))
		}
		return fmt.Errorf("read %s.%s: %w", c.db, c.name, err)
	}
	docs, bytes := ns.Count()
	e.log.DebugContext(ctx, "dumped collection", "namespace", c.db+"."+c.name, "documents", docs, "bytes", bytes, "seconds", time.Since(start).Seconds())
	return nil
}

// databases returns the databases to back up: the URI's, or every one but
// the system databases.
func (e *Engine) databases(ctx context.Context, client *mongo.Client) ([]string, error) {
	if _, db, ok := splitURI(e.uri); ok && db != "" {
		return []string{db}, nil
	}
	return userDatabases(ctx, client)
}

func userDatabases(ctx context.Context, client *mongo.Client) ([]string, error) {
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list databases (or name one database in the dsn): %w", err)
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(systemDatabases, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func serverVersion(ctx context.Context, client *mongo.Client) (string, error) {
	var info struct {
		Version string `bson:"version"`
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "", fmt.Errorf("query server version: %w", err)
	}
	return info.Version, nil
}

// connect connects to uri and checks the server answers. Errors never
// quote the URI.
func connect(ctx context.Context, uri string) (*mongo.Client, error) {
	opts := options.Client().
		SetAppName("backproof").
		SetServerSelectionTimeout(20 * time.Second). // the URI may say otherwise
		ApplyURI(uri)
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid MongoDB connection string: %s", redactURI(err.Error(), uri))
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, errors.New(redactURI(err.Error(), uri))
	}
	if err := client.Ping(ctx, nil); err != nil {
		disconnect(ctx, client)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, errors.New(redactURI(err.Error(), uri))
	}
	return client, nil
}

func disconnect(ctx context.Context, c *mongo.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.Disconnect(ctx)
}

// splitURI returns the hosts and the database of a MongoDB connection
// string without resolving anything (mongodb+srv would need DNS).
func splitURI(uri string) (hosts, db string, ok bool) {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "", "", false
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		hosts = hosts[at+1:]
	}
	db, err := url.PathUnescape(path)
	if err != nil {
		return "", "", false
	}
	return hosts, db, hosts != ""
}

// redactURI removes the URI's password from a message, as written and
// unescaped.
func redactURI(msg, uri string) string { return engine.RedactPassword(msg, uri) }
