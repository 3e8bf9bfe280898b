package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// mongoOrders is how many orders the MongoDB tests seed: with customers and
// events, 3,500 documents.
const mongoOrders = 2500

// mongoAppDB creates a seeded database and a user whose password is the
// sentinel, and returns a URI with that password, and the admin URI.
func mongoAppDB(t *testing.T) (app, admin string) {
	t.Helper()
	ctx := context.Background()
	admin = testenv.NewMongoDB(t)
	if _, err := sample.SeedMongo(ctx, admin, mongoOrders); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	user := "app_" + strings.TrimPrefix(u.Path, "/")
	adminDB := testenv.MongoClient(t, admin).Database("admin")
	// FerretDB 1.24 has no roles (every user may do everything); on MongoDB
	// this user would need the read role.
	if err := adminDB.RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: sentinel}, {Key: "roles", Value: bson.A{}}}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adminDB.RunCommand(context.Background(), bson.D{{Key: "dropUser", Value: user}}) })
	u.User = url.UserPassword(user, sentinel)
	return u.String(), admin
}

// mongoChecks are the configured checks of the MongoDB tests' target.
const mongoChecks = `
    verify:
      checks:
        - {name: orders-present, query: '{"count": "orders"}', expect: "> 0"}
        - {name: paid-orders, query: '{"count": "orders", "query": {"status": "paid"}}', expect: "> 100"}
        - name: orders-fresh
          query: '{"find": "orders", "sort": {"created_at": -1}, "limit": 1, "projection": {"_id": 0, "created_at": 1}}'
          max_age: 26h
        - name: items-sold
          query: '{"aggregate": "orders", "pipeline": [{"$unwind": "$items"}, {"$group": {"_id": null, "n": {"$sum": "$items.qty"}}}]}'
          expect: "> 2500"
`

// mongoConfig is a config with a mongodb target "shop" on dsn, backed up to
// a local directory and MinIO, verified in image.
func mongoConfig(t *testing.T, dsn, image, checks string) string {
	t.Helper()
	top := fmt.Sprintf("sandbox:\n  images: {mongodb: %q}\n  memory: 1GiB\n  cpus: 1\n  timeout: 5m", image)
	return twoDestConfig(t, testenv.S3(t).SecretKey, top, "shop", "mongodb", dsn, checks)
}

// localManifest reads a backup's manifest from the local destination.
func localManifest(t *testing.T, cfg, id string) (*catalog.Manifest, string) {
	t.Helper()
	return localManifestFor(t, cfg, "shop", id)
}

// localManifestFor reads the manifest of a target's backup on the local
// destination, and returns it with the backup's folder.
func localManifestFor(t *testing.T, cfg, target, id string) (*catalog.Manifest, string) {
	t.Helper()
	dir := filepath.Join(localPath(t, cfg), target, id)
	data, err := os.ReadFile(filepath.Join(dir, catalog.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m catalog.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m, dir
}

func mongoDocs(t *testing.T, c *mongo.Collection) []bson.Raw {
	t.Helper()
	cur, err := c.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mongoIndexNames(t *testing.T, c *mongo.Collection) []string {
	t.Helper()
	specs, err := c.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

func mustPath(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

// rewriteLocal replaces a committed backup's artifact on the local
// destination with data (already compressed) and makes the manifest agree,
// as a buggy writer would: the checksum passes, the content must not.
func rewriteLocal(t *testing.T, cfg, id string, data []byte, edit func(*catalog.Manifest)) {
	t.Helper()
	m, dir := localManifest(t, cfg, id)
	if data != nil {
		if err := os.WriteFile(filepath.Join(dir, m.Artifacts[0].Name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		m.Artifacts[0].Size, m.Artifacts[0].SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
	}
	if edit != nil {
		edit(m)
	}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, catalog.ManifestName), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Each bad backup is caught by verify: exit 3, and the reason names it.
func TestMongoVerifyCatchesBadBackups(t *testing.T) {
	image := testenv.MongoImage(t)
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	app, _ := mongoAppDB(t)
	cfg := mongoConfig(t, app, image, mongoChecks)

	artifact := func(t *testing.T, id string) []byte {
		m, dir := localManifest(t, cfg, id)
		data, err := os.ReadFile(filepath.Join(dir, m.Artifacts[0].Name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	recompress := func(t *testing.T, compressed []byte, edit func([]byte) []byte) []byte {
		dec, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		raw, err := dec.DecodeAll(compressed, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeAll(edit(raw), nil)
	}
	cases := []struct {
		name, checks string
		spoil        func(t *testing.T, id string)
		reason       string
	}{
		{
			name: "corrupted artifact",
			spoil: func(t *testing.T, id string) {
				data := artifact(t, id)
				data[len(data)/2] ^= 0x40
				m, dir := localManifest(t, cfg, id)
				if err := os.WriteFile(filepath.Join(dir, m.Artifacts[0].Name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			reason: "checksum: ",
		},
		{
			name: "truncated artifact",
			spoil: func(t *testing.T, id string) {
				m, dir := localManifest(t, cfg, id)
				if err := os.Truncate(filepath.Join(dir, m.Artifacts[0].Name), m.Artifacts[0].Size/2); err != nil {
					t.Fatal(err)
				}
			},
			reason: "checksum: ",
		},
		{
			name: "truncated archive with a manifest that agrees",
			spoil: func(t *testing.T, id string) {
				data := recompress(t, artifact(t, id), func(b []byte) []byte { return b[:len(b)*2/3] })
				rewriteLocal(t, cfg, id, data, nil)
			},
			reason: "restore: restore failed: malformed mongodump archive",
		},
		{
			name: "a document changed, with a manifest that agrees",
			spoil: func(t *testing.T, id string) {
				data := recompress(t, artifact(t, id), func(b []byte) []byte {
					i := bytes.LastIndex(b, []byte("total_cents\x00"))
					b[i+len("total_cents\x00")] ^= 0x01
					return b
				})
				rewriteLocal(t, cfg, id, data, nil)
			},
			reason: "CRC mismatch in",
		},
		{
			name: "wrong document count",
			spoil: func(t *testing.T, id string) {
				rewriteLocal(t, cfg, id, nil, func(m *catalog.Manifest) {
					for i, tb := range m.Source.Tables {
						if tb.Name == "orders" {
							m.Source.Tables[i].Rows++
						}
					}
				})
			},
			reason: "tables: collection bp_",
		},
		{
			name: "missing index",
			spoil: func(t *testing.T, id string) {
				rewriteLocal(t, cfg, id, nil, func(m *catalog.Manifest) {
					m.Source.Objects["index"] = append(m.Source.Objects["index"], "shop.orders.total_1")
				})
			},
			reason: "schema: index shop.orders.total_1 missing",
		},
		{
			name: "failing configured check",
			checks: mongoChecks + `        - {name: no-refunds, query: '{"count": "orders", "query": {"status": "cancelled"}}', expect: "= 0"}
`,
			reason: "no-refunds: got ",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.checks != "" {
				data, err := os.ReadFile(cfg)
				if err != nil {
					t.Fatal(err)
				}
				c = writeConfig(t, strings.Replace(string(data), mongoChecks, tc.checks, 1))
			}
			id := backupCommitted(t, c)
			if tc.spoil != nil {
				tc.spoil(t, id)
			}
			r := runCLI(t, ctx, "verify", "shop", "-c", c, "--backup", id, "--destination", "local", "--json")
			doc := decode[verifyDoc](t, r.stdout)
			if r.code != ExitBadBackup || len(doc.Verifications) != 1 || doc.Verifications[0].Outcome != "fail" ||
				!strings.Contains(doc.Verifications[0].Reason, tc.reason) {
				t.Fatalf("exit %d, want 3 with %q: %+v\n%s", r.code, tc.reason, doc, r.stderr)
			}
			t.Logf("caught: %s", doc.Verifications[0].Reason)
		})
	}
}

// A source that is down, or dies during the dump, fails the backup with
// exit 1 and commits nothing anywhere.
func TestMongoSourceDown(t *testing.T) {
	ctx := context.Background()
	noBackups := func(t *testing.T, cfg string) {
		t.Helper()
		r := runCLI(t, ctx, "list", "-c", cfg, "--json")
		if ld := decode[listDoc](t, r.stdout); r.code != 0 || len(ld.Backups) != 0 {
			t.Fatalf("list exit %d: %+v", r.code, ld)
		}
	}
	t.Run("unreachable", func(t *testing.T) {
		cfg := mongoConfig(t, "mongodb://app:"+sentinel+"@127.0.0.1:1/shop?serverSelectionTimeoutMS=1000", "unused", "")
		r := runCLI(t, ctx, "backup", "-c", cfg)
		if r.code != ExitError || !strings.Contains(r.stderr, "connect to source") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		noBackups(t, cfg)
	})
	t.Run("wrong password", func(t *testing.T) {
		app, _ := mongoAppDB(t)
		cfg := mongoConfig(t, strings.Replace(app, sentinel, sentinel+"-wrong", 1), "unused", "")
		r := runCLI(t, ctx, "backup", "-c", cfg)
		if r.code != ExitError || !strings.Contains(r.stderr, "Authentication failed") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		noBackups(t, cfg)
	})
	t.Run("killed during the dump", func(t *testing.T) {
		uri, kill := testenv.StartFerretDB(t, "shop")
		if _, err := sample.SeedMongo(ctx, uri, 20000); err != nil {
			t.Fatal(err)
		}
		cfg := mongoConfig(t, uri, "unused", "")
		// Kill the server once dump bytes reach the local destination.
		tmp := filepath.Join(localPath(t, cfg), ".tmp")
		done, killed := make(chan struct{}), make(chan bool, 1)
		go func() {
			for {
				select {
				case <-done:
					killed <- false
					return
				case <-time.After(2 * time.Millisecond):
				}
				files, _ := os.ReadDir(tmp)
				for _, f := range files {
					// put-*: the artifact's upload (the lease is written as create-*).
					if fi, err := f.Info(); err == nil && fi.Size() > 0 && strings.HasPrefix(f.Name(), "put-") {
						kill()
						killed <- true
						return
					}
				}
			}
		}()
		r := runCLI(t, ctx, "backup", "-c", cfg)
		close(done)
		if !<-killed {
			t.Fatalf("the backup ended (exit %d) before a dump byte was seen at the destination: %s", r.code, r.stderr)
		}
		if r.code != ExitError || strings.Contains(r.stderr, "connect to source") {
			t.Fatalf("exit %d, want 1 from a dump cut short: %s", r.code, r.stderr)
		}
		t.Logf("backup failed: %s", lastLine(r.stderr))
		noBackups(t, cfg)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
