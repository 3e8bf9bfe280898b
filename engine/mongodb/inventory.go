package mongodb

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/mongodb/archive"
)

// Collection types as listCollections reports them.
const (
	typeCollection = "collection"
	typeView       = "view"
	typeTimeseries = "timeseries"
)

// collection is one collection or view, as listCollections and listIndexes
// describe it.
type collection struct {
	db, name string
	typ      string
	options  bson.Raw   // listCollections "options", verbatim
	uuid     string     // hex, as mongodump writes it; "" for views
	indexes  []bson.Raw // listIndexes specs, verbatim and in server order
	docs     int64
}

func (c *collection) isView() bool { return c.typ == typeView }

// listCollections lists a database's collections and views, sorted by name,
// with their index specs. System collections are left out but system.js,
// as mongodump does.
func listCollections(ctx context.Context, db *mongo.Database, withIndexes bool) ([]collection, error) {
	cur, err := db.ListCollections(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list collections of %s: %w", db.Name(), err)
	}
	var out []collection
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var info struct {
			Name    string   `bson:"name"`
			Type    string   `bson:"type"`
			Options bson.Raw `bson:"options"`
			Info    struct {
				UUID bson.Binary `bson:"uuid"`
			} `bson:"info"`
		}
		if err := cur.Decode(&info); err != nil {
			return nil, fmt.Errorf("list collections of %s: %w", db.Name(), err)
		}
		if strings.HasPrefix(info.Name, "system.") && info.Name != "system.js" {
			continue
		}
		c := collection{db: db.Name(), name: info.Name, typ: cmp.Or(info.Type, typeCollection), options: info.Options}
		if c.options == nil {
			c.options = emptyDoc
		}
		switch c.typ {
		case typeCollection, typeView:
		case typeTimeseries:
			return nil, fmt.Errorf("%s.%s is a time series collection, which this version of backproof cannot back up", c.db, c.name)
		default:
			return nil, fmt.Errorf("%s.%s has unknown type %q", c.db, c.name, c.typ)
		}
		if len(info.Info.UUID.Data) > 0 {
			c.uuid = hex.EncodeToString(info.Info.UUID.Data)
		}
		out = append(out, c)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("list collections of %s: %w", db.Name(), err)
	}
	slices.SortFunc(out, func(a, b collection) int { return strings.Compare(a.name, b.name) })
	if withIndexes {
		for i := range out {
			if out[i].isView() {
				continue
			}
			if out[i].indexes, err = listIndexes(ctx, db.Collection(out[i].name)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

var emptyDoc = bson.Raw{5, 0, 0, 0, 0}

func listIndexes(ctx context.Context, coll *mongo.Collection) ([]bson.Raw, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s.%s: %w", coll.Database().Name(), coll.Name(), err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var specs []bson.Raw
	for cur.Next(ctx) {
		specs = append(specs, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("list indexes of %s.%s: %w", coll.Database().Name(), coll.Name(), err)
	}
	return specs, nil
}

// archiveEntry is the collection's entry in the archive's prelude, its
// metadata in the shape of mongodump's metadata.json.
func (c *collection) archiveEntry() (archive.Collection, error) {
	indexes := c.indexes
	if indexes == nil {
		indexes = []bson.Raw{} // mongorestore wants [], not null
	}
	meta := bson.D{{Key: "indexes", Value: indexes}}
	if c.uuid != "" {
		meta = append(meta, bson.E{Key: "uuid", Value: c.uuid})
	}
	meta = append(meta,
		bson.E{Key: "collectionName", Value: c.name},
		bson.E{Key: "type", Value: c.typ},
		bson.E{Key: "options", Value: c.options})
	js, err := bson.MarshalExtJSON(meta, true, false)
	if err != nil {
		return archive.Collection{}, fmt.Errorf("metadata of %s.%s: %w", c.db, c.name, err)
	}
	return archive.Collection{DB: c.db, Collection: c.name, Metadata: string(js), Type: c.typ}, nil
}

// indexName returns an index spec's name.
func indexName(spec bson.Raw) string {
	s, _ := spec.Lookup("name").StringValueOK()
	return s
}

// addTo records the collection in stats: its documents, itself and its
// indexes as objects.
func (c *collection) addTo(s *engine.SourceStats) {
	ns := c.db + "." + c.name
	if c.isView() {
		s.Objects["view"] = append(s.Objects["view"], ns)
		return
	}
	s.Tables = append(s.Tables, engine.TableStats{Schema: c.db, Name: c.name, Rows: c.docs})
	s.Objects["collection"] = append(s.Objects["collection"], ns)
	for _, ix := range c.indexes {
		s.Objects["index"] = append(s.Objects["index"], ns+"."+indexName(ix))
	}
}

// sortStats sorts tables and every object list, as engine.SourceStats asks.
func sortStats(s *engine.SourceStats) {
	slices.SortFunc(s.Tables, func(a, b engine.TableStats) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	for k := range s.Objects {
		slices.Sort(s.Objects[k])
	}
}
