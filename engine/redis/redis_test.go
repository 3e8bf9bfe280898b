package redis_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/redis"
	"github.com/backproof/backproof/engine/redis/rdb"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/internal/testenv"
)

// sentinel is a password that must never show up in a log or an error.
const sentinel = "Sntl-redis-4e7a1c"

// source starts a seeded server with the sentinel as its password. It
// starts a snapshot for a replica at once (Redis 7 waits 5 s by default for
// more replicas to share a diskless one).
func source(t *testing.T, conf ...string) (*testenv.Redis, string) {
	t.Helper()
	r := testenv.StartRedis(t, append([]string{"requirepass " + sentinel, "repl-diskless-sync-delay 0"}, conf...)...)
	if err := sample.SeedRedis(r.Conn(t)); err != nil {
		t.Fatal(err)
	}
	return r, r.DSN("", sentinel)
}

// dump runs Dump with a logger whose output is checked for the sentinel.
func dump(t *testing.T, dsn string) ([]byte, *engine.DumpInfo, error) {
	t.Helper()
	var logs bytes.Buffer
	e := redis.New(dsn, redis.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	var out bytes.Buffer
	info, err := e.Dump(context.Background(), &out)
	if strings.Contains(logs.String(), sentinel) || err != nil && strings.Contains(err.Error(), sentinel) {
		t.Fatalf("the password leaked: %v\n%s", err, logs.String())
	}
	return out.Bytes(), info, err
}

func TestDump(t *testing.T) {
	for _, diskless := range []string{"yes", "no"} {
		t.Run("repl-diskless-sync "+diskless, func(t *testing.T) {
			src, dsn := source(t, "repl-diskless-sync "+diskless)
			data, info, err := dump(t, dsn)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(info.ServerVersion, "7.") || info.Tools["rdb"] != "10" {
				t.Errorf("server %s, rdb %s", info.ServerVersion, info.Tools["rdb"])
			}
			want := []engine.TableStats{{Schema: "redis", Name: "db0", Rows: sample.Redis[0]}, {Schema: "redis", Name: "db5", Rows: sample.Redis[5]}}
			if len(info.Source.Tables) != 2 || info.Source.Tables[0] != want[0] || info.Source.Tables[1] != want[1] {
				t.Errorf("tables %+v, want %+v", info.Source.Tables, want)
			}
			sum, err := rdb.Scan(bytes.NewReader(data))
			if err != nil || sum.Unreadable != nil || sum.Keys[0] != sample.Redis[0] || sum.Keys[5] != sample.Redis[5] || sum.Functions != 1 {
				t.Fatalf("the snapshot: %v %+v", err, sum)
			}
			// rdb-only: the server let the connection go after the snapshot.
			c := src.Conn(t)
			deadline := time.Now().Add(5 * time.Second)
			for {
				v := c.Must("INFO", "replication").(string)
				if strings.Contains(v, "connected_slaves:0") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the server still counts a replica:\n%s", v)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestDumpRefused(t *testing.T) {
	src, dsn := source(t)
	c := src.Conn(t)
	c.Must("ACL", "SETUSER", "nosync", "on", ">"+sentinel, "~*", "+@all", "-psync", "-sync")
	c.Must("ACL", "SETUSER", "noreplconf", "on", ">"+sentinel, "~*", "+@all", "-replconf")
	// The rights the README documents are enough.
	c.Must("ACL", "SETUSER", "backup", "on", ">"+sentinel, "+psync", "+sync", "+replconf", "+info", "+ping")
	if _, _, err := dump(t, src.DSN("backup", sentinel)); err != nil {
		t.Fatalf("documented ACL: %v", err)
	}

	for _, tc := range []struct{ name, dsn, want string }{
		{"wrong password", strings.Replace(dsn, sentinel, sentinel+"x", 1), "WRONGPASS"},
		{"no such user", src.DSN("ghost", sentinel), "WRONGPASS"},
		{"no psync or sync", src.DSN("nosync", sentinel), "needs the ACL permissions +psync, +sync and +replconf"},
		{"no replconf", src.DSN("noreplconf", sentinel), "refused REPLCONF"},
		{"nothing listens", "redis://:" + sentinel + "@127.0.0.1:1", "connect to redis://127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dump(t, tc.dsn)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("replication disabled", func(t *testing.T) {
		_, dsn := source(t, `rename-command SYNC ""`, `rename-command PSYNC ""`)
		_, _, err := dump(t, dsn)
		if err == nil || !strings.Contains(err.Error(), "replication commands are disabled or renamed") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDumpTLS(t *testing.T) {
	dir := t.TempDir()
	ca := writeCerts(t, dir)
	tlsPort := testenv.FreePort(t)
	src, _ := source(t, "tls-port "+strconv.Itoa(tlsPort), "tls-cert-file "+filepath.Join(dir, "server.pem"),
		"tls-key-file "+filepath.Join(dir, "server.key"), "tls-ca-cert-file "+ca, "tls-auth-clients no", "tls-replication yes")
	_ = src
	base := "rediss://:" + sentinel + "@127.0.0.1:" + strconv.Itoa(tlsPort)
	data, _, err := dump(t, base+"?cacert="+ca)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := rdb.Scan(bytes.NewReader(data)); err != nil || sum.Keys[0] != sample.Redis[0] {
		t.Fatalf("%v %+v", err, sum)
	}
	// Not trusting the server's certificate is an error, not a fallback.
	if _, _, err := dump(t, base); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
}

// writeCerts writes a CA and a server certificate for 127.0.0.1 into dir
// and returns the CA's file.
func writeCerts(t *testing.T, dir string) string {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, srvKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backproof test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", srvDER)
	write("server.key", "EC PRIVATE KEY", srvKeyDER)
	return filepath.Join(dir, "ca.pem")
}

// spool writes a dump of dsn to a file.
func spool(t *testing.T, dsn string) (string, *engine.DumpInfo) {
	t.Helper()
	data, info, err := dump(t, dsn)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.rdb")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, info
}

func TestRestoreInto(t *testing.T) {
	src, dsn := source(t)
	// A key that expires between the backup and the restore is not restored.
	src.Conn(t).Must("SET", "soon:gone", "x", "PX", "1200")
	path, info := spool(t, dsn)
	want, err := sample.RedisSnapshot(src.Conn(t), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	delete(want, "0:soon:gone")
	time.Sleep(1300 * time.Millisecond)

	ctx := context.Background()
	e := redis.New(dsn)
	dst := testenv.StartRedis(t, "requirepass "+sentinel)
	to := dst.DSN("", sentinel)
	if n, err := e.Objects(ctx, to); err != nil || n != 0 {
		t.Fatalf("empty target: %d objects, %v", n, err)
	}
	var progress bytes.Buffer
	if err := e.RestoreInto(ctx, to, path, info, engine.RestoreOptions{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	got, err := sample.RedisSnapshot(dst.Conn(t), 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := sample.DiffRedis(want, got, 1000); len(diffs) > 0 {
		t.Fatalf("restored copy differs:\n%s", strings.Join(diffs, "\n"))
	}
	if fi, _ := os.Stat(path); int64(progress.Len()) != fi.Size() {
		t.Errorf("progress saw %d of %d bytes", progress.Len(), fi.Size())
	}
	if n, err := e.Objects(ctx, to); err != nil || n != int(sample.Redis[0]+sample.Redis[5])+1 {
		t.Errorf("restored target: %d objects, %v", n, err)
	}

	// Again: every key exists now. Without Clean the first collision stops
	// it; with Clean the backup's keys are replaced and others stay.
	err = e.RestoreInto(ctx, to, path, info, engine.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "pass --force") {
		t.Fatalf("restore over existing keys: %v", err)
	}
	c := dst.Conn(t)
	c.Must("SET", "keep:me", "1")
	c.Must("SET", "str:plain", "changed")
	if err := e.RestoreInto(ctx, to, path, info, engine.RestoreOptions{Clean: true}); err != nil {
		t.Fatal(err)
	}
	got, _ = sample.RedisSnapshot(c, 0, 5)
	if got["0:keep:me"].Value == "" || got["0:str:plain"] != want["0:str:plain"] {
		t.Errorf("after a forced restore: keep:me %+v, str:plain %+v", got["0:keep:me"], got["0:str:plain"])
	}

	// A damaged file is refused before the target is touched.
	bad := filepath.Join(t.TempDir(), "bad.rdb")
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 1
	os.WriteFile(bad, data, 0o600)
	empty := testenv.StartRedis(t)
	err = e.RestoreInto(ctx, empty.DSN("", ""), bad, info, engine.RestoreOptions{})
	if !errors.Is(err, engine.ErrRestore) || !errors.Is(err, engine.ErrCorrupt) || !strings.Contains(err.Error(), "the target was not touched") {
		t.Fatalf("damaged file: %v", err)
	}
	if n := empty.Conn(t).Must("DBSIZE"); n != int64(0) {
		t.Errorf("damaged file: %v keys written", n)
	}
}

func TestQuery(t *testing.T) {
	src, _ := source(t)
	ctx := context.Background()
	srv := engine.Server{Host: "127.0.0.1", Port: src.Port, Password: sentinel}
	// The target's DSN names database 5: checks run there unless they say.
	cp, err := redis.New("redis://db.internal/5").Open(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close(ctx)
	st, err := cp.Observe(ctx)
	if err != nil || len(st.Tables) != 2 || st.Tables[0].Rows != sample.Redis[0] {
		t.Fatalf("observe: %+v %v", st, err)
	}
	for q, want := range map[string]string{
		"DBSIZE":                          "3",
		"db0: DBSIZE":                     "18",
		"db0: HLEN hash:big":              "1000",
		"db0: TYPE stream:events":         "stream",
		"db0: XLEN stream:events":         "50",
		"db0: EXISTS ttl:session":         "1",
		`db0: GET "str:plain"`:            "hello world",
		"db0: LRANGE list:small 0 0":      "a",
		"db0: OBJECT ENCODING list:small": "quicklist",
		"ZSCORE other:zset y":             "20",
	} {
		v, err := cp.Query(ctx, q)
		if err != nil || v.Text != want || v.Null {
			t.Errorf("%s: %+v %v, want %s", q, v, err, want)
		}
	}
	if v, err := cp.Query(ctx, "GET nothing"); err != nil || !v.Null {
		t.Errorf("GET nothing: %+v %v", v, err)
	}
	for q, want := range map[string]string{
		"SET x y":                  "not a read-only command",
		"SHUTDOWN":                 "not a read-only command",
		"CONFIG SET save 1":        "not a read-only command",
		"FROB x":                   "unknown command",
		"KEYS *":                   "KEYS walks the whole keyspace",
		"EVAL_RO 'return 1' 0":     "EVAL_RO",
		"db0: LRANGE list:big 0 1": "returned 2 values",
		"HLEN":                     "wrong number of arguments",
		`GET "x`:                   "unbalanced quotes",
	} {
		_, err := cp.Query(ctx, q)
		if !errors.Is(err, engine.ErrQuery) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrQuery with %q", q, err, want)
		}
	}
	if n := src.Conn(t).Must("DBSIZE"); n != sample.Redis[0] {
		t.Errorf("a check changed the data: %v keys", n)
	}
}
