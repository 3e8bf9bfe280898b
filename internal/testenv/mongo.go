package testenv

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Environment variables of the MongoDB test server (FerretDB on SQLite,
// see scripts/testenv.sh) and its sandbox image.
const (
	EnvMongoURI   = "BACKPROOF_TEST_MONGO_URI"   // mongodb://root:...@127.0.0.1:PORT/?authSource=admin
	EnvMongoImage = "BACKPROOF_TEST_MONGO_IMAGE" // local sandbox image speaking the official mongo image's contract
)

// MongoURI returns the admin URI of the shared MongoDB test server. Prefer
// NewMongoDB: tests should not share a database.
func MongoURI(t testing.TB) string {
	t.Helper()
	uri := Require(t, EnvMongoURI)
	requireLoopbackURL(t, EnvMongoURI, uri)
	return uri
}

// MongoImage returns the sandbox image for mongodb built by
// scripts/sandbox-images.sh. It requires Docker too.
func MongoImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	return Require(t, EnvMongoImage)
}

// NewMongoDB returns a URI naming a fresh, uniquely named database on the
// shared test server (same admin user as MongoURI). The database is dropped
// when the test ends.
func NewMongoDB(t testing.TB) string {
	t.Helper()
	u := requireLoopbackURL(t, EnvMongoURI, MongoURI(t))
	name := uniqueName(t, "bp_", '_', 60)
	u.Path = "/" + name
	u.RawPath = ""
	uri := u.String()
	t.Cleanup(func() { DropMongoDB(t, uri) })
	return uri
}

// MongoClient connects to uri, failing the test on error; it is
// disconnected when the test ends.
func MongoClient(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(20 * time.Second))
	if err != nil {
		t.Fatalf("testenv: mongo connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// DropMongoDB drops the database uri names.
func DropMongoDB(t testing.TB, uri string) {
	t.Helper()
	u := requireLoopbackURL(t, EnvMongoURI, uri)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Errorf("testenv: mongo connect: %v", err)
		return
	}
	defer c.Disconnect(ctx) //nolint:errcheck // test cleanup
	if err := c.Database(u.Path[1:]).Drop(ctx); err != nil {
		t.Errorf("testenv: drop database %s: %v", u.Path[1:], err)
	}
}
