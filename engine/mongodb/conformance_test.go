package mongodb_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/backproof/backproof/engine/enginetest"
	"github.com/backproof/backproof/engine/mongodb"
	"github.com/backproof/backproof/internal/testenv"
)

// Each database is database "shop" on a private FerretDB, so a source and
// its restored copy name their collections alike.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Kind: mongodb.Kind,
		NewDatabase: func(t testing.TB) string {
			uri, _ := testenv.StartFerretDB(t, "shop")
			return uri
		},
		Seed:         mongoSeed,
		Extra:        mongoExtra,
		Content:      mongoContent,
		WritingQuery: `{"aggregate": "orders", "pipeline": [{"$out": "copy"}]}`,
	})
}

// mongoSeed: variant 2 has fewer orders, with other values under the same ids.
func mongoSeed(t testing.TB, uri string, variant int) {
	t.Helper()
	ctx := context.Background()
	db := testenv.MongoClient(t, uri).Database("shop")
	var orders, customers []any
	for i := 1; i <= 200-80*(variant-1); i++ {
		orders = append(orders, bson.D{
			{Key: "_id", Value: i},
			{Key: "customer", Value: fmt.Sprintf("c%d", i*variant%13)},
			{Key: "total", Value: float64(i*variant) / 4},
			{Key: "lines", Value: bson.A{bson.D{{Key: "sku", Value: "a"}, {Key: "qty", Value: variant}}}},
		})
	}
	for i := 1; i <= 30; i++ {
		customers = append(customers, bson.D{{Key: "_id", Value: fmt.Sprintf("c%d", i)}, {Key: "tier", Value: i * variant % 3}})
	}
	if _, err := db.Collection("orders").InsertMany(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("customers").InsertMany(ctx, customers); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("orders").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "customer", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
}

func mongoExtra(t testing.TB, uri string) string {
	t.Helper()
	c := testenv.MongoClient(t, uri).Database("shop").Collection("extra")
	if _, err := c.InsertMany(context.Background(), []any{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	return "shop.extra"
}

// mongoContent reads every collection of database shop as _id -> document,
// both in canonical Extended JSON.
func mongoContent(t testing.TB, uri string) enginetest.Content {
	t.Helper()
	ctx := context.Background()
	db := testenv.MongoClient(t, uri).Database("shop")
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.Content{}
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		items := map[string]string{}
		for cur.Next(ctx) {
			id, err := bson.MarshalExtJSON(bson.D{{Key: "_id", Value: cur.Current.Lookup("_id")}}, true, false)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := bson.MarshalExtJSON(cur.Current, true, false)
			if err != nil {
				t.Fatal(err)
			}
			items[string(id)] = string(doc)
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		c["shop."+n] = items
	}
	return c
}
