package sample

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// SeedMongo fills the database that uri names with an order service's
// collections: customers (orders/5; nested addresses, tags, binary photo
// and UUID, unique email index), orders (nested item arrays, ObjectId
// references, dates, timestamps, int32/int64/double, compound indexes), a
// capped events collection (orders/5; regexes, nulls, nested arrays) and an
// empty collection with an index. Dates are recent, so a freshness check
// passes. Decimal128 values are written only where the server has them
// (FerretDB 1.x has not); decimals reports whether it did.
func SeedMongo(ctx context.Context, uri string, orders int) (decimals bool, err error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return false, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // nothing was written through it afterwards
	db := client.Database(dbName(uri))

	var info bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, err
	}
	_, ferret := info["ferretdbVersion"]
	decimals = !ferret

	rng := rand.New(rand.NewPCG(1, uint64(orders)))
	now := time.Now().UTC().Truncate(time.Millisecond)
	oid := func(i int) bson.ObjectID { // deterministic, distinct ObjectIds
		var id bson.ObjectID
		binary.BigEndian.PutUint32(id[:], uint32(now.Unix())-uint32(i))
		binary.BigEndian.PutUint64(id[4:], rng.Uint64())
		return id
	}

	nCustomers := max(orders/5, 1)
	custIDs := make([]bson.ObjectID, nCustomers)
	customers := make([]any, nCustomers)
	cities := []string{"Lisbon", "Oslo", "Kraków", "São Paulo", "Osaka"}
	for i := range customers {
		custIDs[i] = oid(i)
		uuid := make([]byte, 16)
		for j := range uuid {
			uuid[j] = byte(rng.IntN(256))
		}
		uuid[6], uuid[8] = uuid[6]&0x0f|0x40, uuid[8]&0x3f|0x80
		c := bson.D{
			{Key: "_id", Value: custIDs[i]},
			{Key: "email", Value: fmt.Sprintf("customer%d@example.com", i)},
			{Key: "name", Value: bson.D{{Key: "first", Value: fmt.Sprintf("Ana %d", i)}, {Key: "last", Value: "Ñúñez"}}},
			{Key: "address", Value: bson.D{
				{Key: "street", Value: fmt.Sprintf("%d Rua Augusta", i+1)},
				{Key: "city", Value: cities[i%len(cities)]},
				{Key: "geo", Value: bson.D{{Key: "type", Value: "Point"}, {Key: "coordinates", Value: bson.A{-9.14 + rng.Float64(), 38.7 + rng.Float64()}}}},
			}},
			{Key: "tags", Value: bson.A{"retail", fmt.Sprintf("cohort-%d", i%7)}},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(now.Add(-time.Duration(i) * time.Hour))},
			{Key: "photo", Value: bson.Binary{Subtype: 0, Data: []byte{0x89, 'P', 'N', 'G', byte(i), 0, 0xff}}},
			{Key: "ext_id", Value: bson.Binary{Subtype: 4, Data: uuid}},
			{Key: "vip", Value: i%11 == 0},
			{Key: "score", Value: rng.Float64() * 100},
			{Key: "visits", Value: int64(rng.IntN(1 << 40))},
		}
		if i%3 == 0 {
			c = append(c, bson.E{Key: "note", Value: nil})
		}
		customers[i] = c
	}

	statuses := []string{"new", "paid", "shipped", "cancelled"}
	orderDocs := make([]any, orders)
	for i := range orderDocs {
		var items bson.A
		cents := int64(0)
		for j := range 1 + rng.IntN(3) {
			qty, price := int32(1+rng.IntN(4)), int64(100+rng.IntN(9900))
			cents += int64(qty) * price
			items = append(items, bson.D{
				{Key: "sku", Value: fmt.Sprintf("SKU-%04d", rng.IntN(500))},
				{Key: "qty", Value: qty},
				{Key: "price", Value: float64(price) / 100},
				{Key: "options", Value: bson.D{{Key: "gift", Value: j == 1}, {Key: "sizes", Value: bson.A{bson.D{{Key: "S", Value: int32(j)}}, bson.D{}}}}},
			})
		}
		o := bson.D{
			{Key: "_id", Value: oid(i)},
			{Key: "number", Value: int64(100000 + i)},
			{Key: "customer_id", Value: custIDs[rng.IntN(nCustomers)]},
			{Key: "status", Value: statuses[rng.IntN(len(statuses))]},
			{Key: "items", Value: items},
			{Key: "total_cents", Value: cents},
			{Key: "created_at", Value: bson.NewDateTimeFromTime(now.Add(-time.Duration(i) * time.Minute))},
			{Key: "synced", Value: bson.Timestamp{T: uint32(now.Unix()) - uint32(i), I: uint32(i % 5)}},
		}
		if decimals {
			d, err := bson.ParseDecimal128(fmt.Sprintf("%d.%02d", cents/100, cents%100))
			if err != nil {
				return false, err
			}
			o = append(o, bson.E{Key: "total", Value: d})
		}
		orderDocs[i] = o
	}

	nEvents := max(orders/5, 1)
	events := make([]any, nEvents)
	for i := range events {
		events[i] = bson.D{
			{Key: "_id", Value: oid(i)},
			{Key: "kind", Value: []string{"login", "checkout", "refund"}[i%3]},
			{Key: "at", Value: bson.NewDateTimeFromTime(now.Add(-time.Duration(i) * time.Second))},
			{Key: "payload", Value: bson.D{{Key: "ip", Value: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}, {Key: "retries", Value: int32(i % 4)}, {Key: "trace", Value: bson.A{int32(1), int64(2), 3.5, "four", nil, bson.D{{Key: "five", Value: true}}}}}},
			{Key: "match", Value: bson.Regex{Pattern: "^ord-[0-9]+$", Options: "i"}},
		}
	}

	for _, cmd := range []bson.D{
		{{Key: "create", Value: "events"}, {Key: "capped", Value: true}, {Key: "size", Value: int64(64 << 20)}},
		{{Key: "create", Value: "audit_empty"}},
	} {
		if err := db.RunCommand(ctx, cmd).Err(); err != nil {
			return false, fmt.Errorf("%v: %w", cmd, err)
		}
	}
	for name, docs := range map[string][]any{"customers": customers, "orders": orderDocs, "events": events} {
		if _, err := db.Collection(name).InsertMany(ctx, docs); err != nil {
			return false, fmt.Errorf("insert %s: %w", name, err)
		}
	}
	indexes := map[string][]mongo.IndexModel{
		"customers": {
			{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_unique")},
			{Keys: bson.D{{Key: "address.city", Value: 1}, {Key: "created_at", Value: -1}}},
		},
		"orders": {
			{Keys: bson.D{{Key: "number", Value: 1}}, Options: options.Index().SetUnique(true)},
			{Keys: bson.D{{Key: "customer_id", Value: 1}}},
			{Keys: bson.D{{Key: "status", Value: 1}, {Key: "created_at", Value: -1}}},
		},
		"events":      {{Keys: bson.D{{Key: "kind", Value: 1}}}},
		"audit_empty": {{Keys: bson.D{{Key: "at", Value: -1}}}},
	}
	for name, models := range indexes {
		if _, err := db.Collection(name).Indexes().CreateMany(ctx, models); err != nil {
			return false, fmt.Errorf("indexes of %s: %w", name, err)
		}
	}
	return decimals, nil
}

// MongoCounts returns the document count of every collection of the
// database uri names.
func MongoCounts(ctx context.Context, uri string) (map[string]int64, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	db := client.Database(dbName(uri))
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, n := range names {
		c, err := db.Collection(n).CountDocuments(ctx, bson.D{})
		if err != nil {
			return nil, err
		}
		out[n] = c
	}
	return out, nil
}

// dbName is the database a single-host mongodb:// URI names.
func dbName(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}
