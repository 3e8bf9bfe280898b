package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// EnvFerretDBBin names the FerretDB binary, for tests that run their own.
const EnvFerretDBBin = "BACKPROOF_TEST_FERRETDB_BIN"

// StartFerretDB starts a private FerretDB (SQLite, authentication on) on a
// free 127.0.0.1 port with its own data directory and a random root
// password, and returns its admin URI naming database db. stop kills it
// (SIGKILL, like a crash) and waits for it; it also runs when the test
// ends. Use it for tests that must kill the server; otherwise NewMongoDB.
func StartFerretDB(t testing.TB, db string) (uri string, stop func()) {
	t.Helper()
	bin := Require(t, EnvFerretDBBin)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		Unavailable(t, "%s=%s is not an executable file", EnvFerretDBBin, bin)
	}
	dir := t.TempDir()
	pass := randHex(16)
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		addr := FreeAddr(t)
		logPath := filepath.Join(dir, "ferretdb-"+strconv.Itoa(attempt)+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		data := filepath.Join(dir, "data-"+strconv.Itoa(attempt))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		cmd := exec.Command(bin, "--handler=sqlite", "--sqlite-url=file:"+data+"/", "--state-dir="+data,
			"--listen-addr="+addr, "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
			"--test-enable-new-auth", "--setup-database=admin", "--setup-username=root")
		cmd.Env = append(envWithout("FERRETDB_"), "FERRETDB_SETUP_PASSWORD="+pass)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		setChildAttrs(cmd)
		if err := cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("testenv: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
		}
		t.Cleanup(stop)
		lastErr = waitTCP(addr, exited, 30*time.Second)
		if lastErr == nil {
			return "mongodb://root:" + pass + "@" + addr + "/" + db + "?authSource=admin", stop
		}
		stop()
		log, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%w\n--- %s ---\n%s", lastErr, logPath, tail(string(log), 30))
		if !strings.Contains(string(log), "address already in use") {
			break
		}
	}
	t.Fatalf("testenv: private FerretDB did not start: %v", lastErr)
	return "", nil
}

// waitTCP waits until addr accepts TCP connections.
func waitTCP(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("%s not accepting connections after %s", addr, timeout)
}
