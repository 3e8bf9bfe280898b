package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backproof/backproof/internal/testenv"
)

// TestImage builds the daemon image as CI and releases do (scripts/image.sh)
// and runs it: `version` prints this commit, the client tools and the
// non-root user are there, and the HEALTHCHECK turns healthy on the image's
// default command serving a config mounted at /etc/backproof.
func TestImage(t *testing.T) {
	testenv.PostgresImage(t) // the image's base comes with the sandbox images
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// One tag per checkout: concurrent runs from other worktrees on the same
	// engine build their own.
	sum := sha256.Sum256([]byte(repo))
	tag := "backproof-test/backproof:" + hex.EncodeToString(sum[:6])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var stderr bytes.Buffer
	build := exec.CommandContext(ctx, "bash", filepath.Join(repo, "scripts/image.sh"), "--tag", tag)
	build.Stderr = &stderr
	out, err := build.Output()
	if err != nil || strings.TrimSpace(string(out)) != tag {
		t.Fatalf("scripts/image.sh: %v; stdout %q\n%s", err, out, tail(stderr.String(), 40))
	}

	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	version := docker("run", "--rm", "--network", "none", tag, "version")
	if !regexp.MustCompile(`^backproof \S+ \(commit [0-9a-f]{40}, go1\.\d+[^,]*, linux/\w+\)$`).MatchString(version) {
		t.Errorf("version: %q", version)
	}
	if head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output(); err == nil && !strings.Contains(version, strings.TrimSpace(string(head))) {
		t.Errorf("version %q is not of HEAD %s", version, head)
	}
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if v := docker("run", "--rm", "--network", "none", "--entrypoint", tool, tag, "--version"); !strings.Contains(v, "(PostgreSQL) 18.") {
			t.Errorf("%s --version: %q", tool, v)
		}
	}
	imageBacksUpPG18(t, ctx, tag)
	imageRestoresPG15(t, ctx, tag)

	var img []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			Volumes      map[string]struct{}
			ExposedPorts map[string]struct{}
			Healthcheck  *struct{ Test []string }
		}
	}
	if err := json.Unmarshal([]byte(docker("image", "inspect", tag)), &img); err != nil || len(img) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	c := img[0].Config
	_, etc := c.Volumes["/etc/backproof"]
	_, data := c.Volumes["/var/lib/backproof"]
	_, port := c.ExposedPorts["9847/tcp"]
	if c.User != "backproof:backproof" || !slices.Equal(c.Entrypoint, []string{"backproof"}) ||
		!slices.Equal(c.Cmd, []string{"daemon", "-c", "/etc/backproof/backproof.yaml"}) ||
		!etc || !data || !port || c.Healthcheck == nil {
		t.Errorf("image config: %+v", c)
	}

	// The default command on a mounted config, healthy by its own check.
	dir := t.TempDir()
	cfg := `listen: 127.0.0.1:9847
destinations:
  local: {type: local, path: /var/lib/backproof}
targets:
  orders:
    engine: postgres
    dsn: postgres://backproof@127.0.0.1:1/orders
    destinations: [local]
`
	if err := os.WriteFile(filepath.Join(dir, "backproof.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := docker("run", "-d", "--network", "none", "--label", "io.backproof.test=image",
		"--health-interval", "1s", "--health-start-period", "1s",
		"-v", dir+":/etc/backproof:ro", tag)
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", "-v", id).Run() //nolint:errcheck // best effort
	})
	deadline := time.Now().Add(time.Minute)
	for {
		state := docker("inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", id)
		if state == "running healthy" {
			break
		}
		if time.Now().After(deadline) || !strings.HasPrefix(state, "running") {
			t.Fatalf("container %s, logs:\n%s", state, docker("logs", id))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// imageBacksUpPG18: the image's backproof backs up a PostgreSQL 18 server
// with its own pg_dump (this host's is older). The container shares the
// host's network only to reach the test server on 127.0.0.1.
func imageBacksUpPG18(t *testing.T, ctx context.Context, tag string) {
	t.Helper()
	dsn := testenv.PostgresServers[2].NewDB(t)
	testenv.Exec(t, dsn, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 42)")
	dir := imageDir(t, "pg18", "PG18_DSN")
	store := filepath.Join(dir, "store")
	// The DSN reaches docker through its environment only (-e NAME).
	t.Setenv("PG18_DSN", dsn)
	var stderr bytes.Buffer
	run := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", "host", "--label", "io.backproof.test=image", "-e", "PG18_DSN",
		"-v", dir+":/var/lib/backproof", tag, "backup", "-c", "/var/lib/backproof/backproof.yaml", "--json")
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("backup in the image: %v\n%s", err, tail(stderr.String(), 20))
	}
	var doc struct {
		Backups []struct {
			ID           string
			Destinations []struct{ Committed bool }
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil || len(doc.Backups) != 1 || len(doc.Backups[0].Destinations) != 1 || !doc.Backups[0].Destinations[0].Committed {
		t.Fatalf("backup in the image: %v\n%s", err, out)
	}
	manifest, err := os.ReadFile(filepath.Join(store, "pg18", doc.Backups[0].ID, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ServerVersion string            `json:"server_version"`
		Tools         map[string]string `json:"tools"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil || !strings.HasPrefix(m.ServerVersion, "18.") || !strings.HasPrefix(m.Tools["pg_dump"], "18.") {
		t.Errorf("manifest of the image's backup: server %q, tools %v (%v)", m.ServerVersion, m.Tools, err)
	}
}

// imageRestoresPG15: a PostgreSQL 15 database backed up and restored by the
// image's pg_dump and pg_restore 18. pg_restore 17 and newer open a restore
// with SET transaction_timeout, which servers before 17 refuse: the restore
// must still work, into an empty database, in one transaction.
func imageRestoresPG15(t *testing.T, ctx context.Context, tag string) {
	t.Helper()
	src := testenv.PostgresServers[0].NewDB(t)
	testenv.Exec(t, src, `CREATE TABLE t (id int PRIMARY KEY, note text);
		INSERT INTO t SELECT g, 'SET transaction_timeout = 0;' FROM generate_series(1, 42) g`)
	to := testenv.PostgresServers[0].NewDB(t)
	dir := imageDir(t, "pg15", "SRC_DSN")
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("SRC_DSN", src)
	t.Setenv("PGPASSWORD", password)
	in := func(args ...string) {
		t.Helper()
		var stderr bytes.Buffer
		run := exec.CommandContext(ctx, "docker", append([]string{"run", "--rm", "--network", "host", "--label", "io.backproof.test=image",
			"-e", "SRC_DSN", "-e", "PGPASSWORD", "-v", dir + ":/var/lib/backproof", tag}, args...)...)
		run.Stderr = &stderr
		if out, err := run.Output(); err != nil {
			t.Fatalf("%s in the image: %v\n%s%s", args[0], err, out, tail(stderr.String(), 20))
		}
	}
	in("backup", "-c", "/var/lib/backproof/backproof.yaml")
	in("restore", "-c", "/var/lib/backproof/backproof.yaml", "pg15", "--to", u.String())
	conn, err := pgx.Connect(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE note = 'SET transaction_timeout = 0;'").Scan(&n); err != nil || n != 42 {
		t.Errorf("restored rows: %d, %v; want 42", n, err)
	}
}

// imageDir makes the directory mounted at /var/lib/backproof in the image:
// a config backing up target from the DSN in $dsnVar to the local
// destination in its store/, both writable by the image's user.
func imageDir(t *testing.T, target, dsnVar string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`destinations:
  local: {type: local, path: /var/lib/backproof/store}
targets:
  %s:
    engine: postgres
    dsn: ${%s}
    destinations: [local]
`, target, dsnVar)
	if err := os.WriteFile(filepath.Join(dir, "backproof.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, store} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
