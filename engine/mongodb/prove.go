package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/checkquery"
	"github.com/backproof/backproof/sandbox"
)

var _ engine.Prover = (*Engine)(nil)

// ReadyLine is what mongod logs once it accepts connections. The official
// image's entrypoint may log it first for a temporary server bound to the
// container's loopback while it creates the root user; connecting retries
// until the real server answers.
const ReadyLine = "Waiting for connections"

// sandboxUser is the root user the official image creates from
// MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD.
const sandboxUser = "backproof"

// Sandbox implements engine.Prover with the official image's contract.
func (e *Engine) Sandbox(image, password string, _ *engine.DumpInfo) (sandbox.Spec, engine.Server) {
	srv := engine.Server{User: sandboxUser, Password: password}
	return sandbox.Spec{
		Image: image,
		Env: map[string]string{
			"MONGO_INITDB_ROOT_USERNAME": srv.User,
			"MONGO_INITDB_ROOT_PASSWORD": srv.Password,
		},
		Port:       "27017/tcp",
		DataDir:    "/data/db",
		Ready:      ReadyLine,
		ReadyCount: 1,
	}, srv
}

// ConnString is a mongodb:// URI for srv; it holds the password. The user
// authenticates against admin, where the official image creates it.
func ConnString(srv engine.Server) string {
	u := url.URL{Scheme: "mongodb", Host: net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), Path: "/" + srv.Database}
	q := url.Values{"directConnection": {"true"}}
	if srv.User != "" {
		u.User = url.UserPassword(srv.User, srv.Password)
		q.Set("authSource", "admin")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// ConnString is the package's ConnString, for callers holding an engine.
func (e *Engine) ConnString(srv engine.Server) string { return ConnString(srv) }

// Describe names the deployment and database a URI points at, without its
// credentials: hosts/database.
func (e *Engine) Describe(dsn string) string {
	hosts, db, ok := splitURI(dsn)
	if !ok {
		return "the given deployment"
	}
	return hosts + "/" + db
}

// Objects counts the collections and views a restore into dsn could collide
// with: those of the URI's database, or of every database but the system
// ones.
func (e *Engine) Objects(ctx context.Context, dsn string) (int, error) {
	client, err := connect(ctx, dsn)
	if err != nil {
		return 0, fmt.Errorf("connect to restore target %s: %w", e.Describe(dsn), err)
	}
	defer disconnect(ctx, client)
	dbs := []string{}
	if _, db, _ := splitURI(dsn); db != "" {
		dbs = append(dbs, db)
	} else if dbs, err = userDatabases(ctx, client); err != nil {
		return 0, err
	}
	n := 0
	for _, db := range dbs {
		cs, err := listCollections(ctx, client.Database(db), false)
		if err != nil {
			return 0, err
		}
		n += len(cs)
	}
	return n, nil
}

// Open implements engine.Prover.
func (e *Engine) Open(ctx context.Context, srv engine.Server) (engine.Copy, error) {
	client, err := connect(ctx, ConnString(srv))
	if err != nil {
		return nil, fmt.Errorf("connect to restored copy: %w", err)
	}
	raw, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		disconnect(ctx, client)
		return nil, fmt.Errorf("restored copy: buildInfo: %w", err)
	}
	_, ferret := raw.Lookup("ferretdbVersion").StringValueOK()
	return &restored{client: client, ferretDB: ferret}, nil
}

// restored is a restored copy under inspection.
type restored struct {
	client   *mongo.Client
	ferretDB bool // FerretDB, not MongoDB: no maxTimeMS on aggregate
}

func (r *restored) Close(ctx context.Context) error {
	disconnect(ctx, r.client)
	return nil
}

// Observe implements engine.Copy: the same inventory a dump records, with
// exact document counts.
func (r *restored) Observe(ctx context.Context) (*engine.SourceStats, error) {
	dbs, err := userDatabases(ctx, r.client)
	if err != nil {
		return nil, err
	}
	stats := &engine.SourceStats{Objects: map[string][]string{}}
	for _, db := range dbs {
		cs, err := listCollections(ctx, r.client.Database(db), true)
		if err != nil {
			return nil, err
		}
		for i := range cs {
			c := &cs[i]
			if !c.isView() {
				if c.docs, err = r.client.Database(db).Collection(c.name).CountDocuments(ctx, bson.D{}); err != nil {
					return nil, fmt.Errorf("count documents of %s.%s: %w", db, c.name, err)
				}
			}
			c.addTo(stats)
		}
	}
	sortStats(stats)
	return stats, nil
}

// Integrity implements engine.Copy with the validate command on every
// collection, which checks its data and its indexes against the data.
func (r *restored) Integrity(ctx context.Context) (string, error) {
	n, err := r.validate(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d indexes", n), nil
}

// validate returns how many indexes it checked.
func (r *restored) validate(ctx context.Context) (int, error) {
	dbs, err := userDatabases(ctx, r.client)
	if err != nil {
		return 0, err
	}
	indexes := 0
	for _, db := range dbs {
		cs, err := listCollections(ctx, r.client.Database(db), false)
		if err != nil {
			return 0, err
		}
		for _, c := range cs {
			if c.isView() {
				continue
			}
			var res struct {
				Valid    bool     `bson:"valid"`
				NIndexes int      `bson:"nIndexes"`
				Errors   []string `bson:"errors"`
			}
			err := r.client.Database(db).RunCommand(ctx, bson.D{{Key: "validate", Value: c.name}}).Decode(&res)
			var se mongo.ServerError
			switch {
			case errors.As(err, &se) && (se.HasErrorCode(59) || se.HasErrorCode(115) || se.HasErrorCode(238)):
				return 0, fmt.Errorf("the sandbox server cannot validate collections: %w", errors.ErrUnsupported)
			case err != nil:
				return 0, fmt.Errorf("validate %s.%s: %w", db, c.name, err)
			case !res.Valid:
				return 0, fmt.Errorf("%w: collection %s.%s: %s", engine.ErrCorrupt, db, c.name, strings.Join(res.Errors, "; "))
			}
			indexes += res.NIndexes
		}
	}
	return indexes, nil
}

// Query implements engine.Copy. The query is a read-only command document
// (package checkquery) run against its "$db" or the copy's only database.
// Its value is "n" for count; for aggregate and find, the one field besides
// _id of the one document returned.
func (r *restored) Query(ctx context.Context, query string) (engine.Value, error) {
	q, err := checkquery.Parse(query)
	if err != nil {
		return engine.Value{}, fmt.Errorf("%w: %v", engine.ErrQuery, err)
	}
	db := q.DB
	if db == "" {
		dbs, err := userDatabases(ctx, r.client)
		if err != nil {
			return engine.Value{}, err
		}
		if len(dbs) != 1 {
			return engine.Value{}, fmt.Errorf("%w: the copy holds %d databases (%s): name one with \"$db\"", engine.ErrQuery, len(dbs), strings.Join(dbs, ", "))
		}
		db = dbs[0]
	}
	doc := q.Doc
	if q.Command != "aggregate" || !r.ferretDB {
		// FerretDB 1.24 drops the connection of an aggregate that carries
		// maxTimeMS; there the check's deadline ends the wait, and the
		// sandbox's removal the query. MongoDB takes it on all three.
		doc = withMaxTime(doc, engine.QueryTimeout(ctx))
	}
	res, err := r.client.Database(db).RunCommand(ctx, doc).Raw()
	if err != nil {
		return engine.Value{}, queryErr(err)
	}
	if q.Command == "count" {
		n := res.Lookup("n")
		if !isNumber(n) {
			return engine.Value{}, fmt.Errorf("%w: count returned no number", engine.ErrQuery)
		}
		return toValue(n), nil
	}
	return singleField(res)
}

// withMaxTime sets the command's maxTimeMS to at most d, so the server stops
// it when the check gives up.
func withMaxTime(doc bson.D, d time.Duration) bson.D {
	ms := max(d.Milliseconds(), 1)
	out := make(bson.D, 0, len(doc)+1)
	for _, e := range doc {
		if e.Key == "maxTimeMS" {
			if n, ok := e.Value.(int64); ok && n > 0 && n < ms {
				ms = n
			} else if n, ok := e.Value.(int32); ok && n > 0 && int64(n) < ms {
				ms = int64(n)
			}
			continue
		}
		out = append(out, e)
	}
	return append(out, bson.E{Key: "maxTimeMS", Value: ms})
}

// singleField returns the value of a cursor result's only document's only
// field besides _id.
func singleField(res bson.Raw) (engine.Value, error) {
	batch, ok := res.Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		return engine.Value{}, fmt.Errorf("%w: the result has no cursor", engine.ErrQuery)
	}
	docs, err := batch.Values()
	if err != nil {
		return engine.Value{}, fmt.Errorf("%w: %v", engine.ErrQuery, err)
	}
	id, _ := res.Lookup("cursor", "id").AsInt64OK()
	more := id != 0
	if len(docs) != 1 || more {
		n := strconv.Itoa(len(docs))
		if more {
			n = "more than " + n
		}
		return engine.Value{}, fmt.Errorf("%w: returned %s documents, want exactly one", engine.ErrQuery, n)
	}
	doc, ok := docs[0].DocumentOK()
	if !ok {
		return engine.Value{}, fmt.Errorf("%w: the result is not a document", engine.ErrQuery)
	}
	elems, err := doc.Elements()
	if err != nil {
		return engine.Value{}, fmt.Errorf("%w: %v", engine.ErrQuery, err)
	}
	var fields []bson.RawElement
	for _, el := range elems {
		if el.Key() != "_id" {
			fields = append(fields, el)
		}
	}
	if len(fields) != 1 {
		var keys []string
		for _, f := range fields {
			keys = append(keys, f.Key())
		}
		return engine.Value{}, fmt.Errorf("%w: the document returned has %d fields besides _id (%s), want exactly one", engine.ErrQuery, len(fields), strings.Join(keys, ", "))
	}
	return toValue(fields[0].Value()), nil
}

// queryErr marks what the server said about the query as ErrQuery; a lost
// connection, or a sandbox lacking the feature, stays operational.
func queryErr(err error) error {
	var se mongo.ServerError
	if !errors.As(err, &se) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return err
	}
	for _, c := range infraCodes {
		if se.HasErrorCode(c) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", engine.ErrQuery, err)
}

func isNumber(v bson.RawValue) bool {
	switch v.Type {
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128:
		return true
	}
	return false
}

// toValue renders a BSON value for a check: numbers in Go's shortest form,
// dates as times.
func toValue(v bson.RawValue) engine.Value {
	switch v.Type {
	case bson.TypeNull, bson.TypeUndefined:
		return engine.Value{Null: true}
	case bson.TypeInt32:
		return engine.Value{Text: strconv.FormatInt(int64(v.Int32()), 10)}
	case bson.TypeInt64:
		return engine.Value{Text: strconv.FormatInt(v.Int64(), 10)}
	case bson.TypeDouble:
		return engine.Value{Text: strconv.FormatFloat(v.Double(), 'g', -1, 64)}
	case bson.TypeDecimal128:
		return engine.Value{Text: v.Decimal128().String()}
	case bson.TypeString:
		return engine.Value{Text: v.StringValue()}
	case bson.TypeBoolean:
		return engine.Value{Text: strconv.FormatBool(v.Boolean())}
	case bson.TypeDateTime:
		t := time.UnixMilli(v.DateTime()).UTC()
		return engine.Value{Text: t.Format(time.RFC3339Nano), Time: &t}
	case bson.TypeTimestamp:
		sec, _ := v.Timestamp()
		t := time.Unix(int64(sec), 0).UTC()
		return engine.Value{Text: t.Format(time.RFC3339), Time: &t}
	case bson.TypeObjectID:
		return engine.Value{Text: v.ObjectID().Hex()}
	}
	return engine.Value{Text: v.String()}
}
