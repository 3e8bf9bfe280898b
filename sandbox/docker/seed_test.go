package docker_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/sandbox/docker"
)

// A postgres sandbox with a Seed: the first start prepares the data once (a
// server started and stopped cleanly, its data directory kept), and it and
// later starts run their server on a copy of it, once (no initdb, no
// entrypoint's first server). Each copy is its own. A seed file changed
// since it was written is dropped, and the sandbox starts from scratch.
func TestSeed(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, docker.WithSeedDir(dir))
	ctx := context.Background()
	seeds := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "*"))
		return m
	}

	spec, srv := e.spec(t)
	first := e.start(t, spec)
	files := seeds()
	if len(files) != 1 || !strings.HasSuffix(files[0], ".tar") {
		t.Fatalf("seed directory holds %v, want one .tar file", files)
	}
	if n := e.readyLines(t, e.the(t)); n != 1 {
		t.Errorf("the seeded server logged ready %d times, want 1", n)
	}
	if _, err := connect(t, first, srv).Exec(ctx, "CREATE TABLE only_in_first (x int)"); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)

	spec, srv = e.spec(t)
	second := e.start(t, spec)
	if got := seeds(); !slices.Equal(got, files) {
		t.Errorf("seed directory holds %v after a second start, want %v", got, files)
	}
	if n := e.readyLines(t, e.the(t)); n != 1 {
		t.Errorf("the second seeded server logged ready %d times, want 1", n)
	}
	var missing bool
	if err := connect(t, second, srv).QueryRow(ctx, "SELECT to_regclass('only_in_first') IS NULL").Scan(&missing); err != nil || !missing {
		t.Errorf("the second sandbox sees the first one's table (%v)", err)
	}
	second.Close(ctx)

	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	spec, srv = e.spec(t)
	third := e.start(t, spec)
	if n := e.readyLines(t, e.the(t)); n != 2 {
		t.Errorf("after a changed seed the server logged ready %d times, want 2 (from scratch)", n)
	}
	if got := seeds(); len(got) != 0 {
		t.Errorf("the changed seed is still there: %v", got)
	}
	if !strings.Contains(e.log.String(), "prepared data is unusable") {
		t.Errorf("no warning about the changed seed in the log:\n%s", e.log.String())
	}
	connect(t, third, srv)
	third.Close(ctx)
	if left := e.containers(t); len(left) != 0 {
		t.Errorf("%d containers left", len(left))
	}
}

// readyLines counts PostgreSQL's ready line in the whole output of id.
func (e *env) readyLines(t *testing.T, id string) int {
	t.Helper()
	rc, err := e.cli.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), postgres.ReadyLine)
}
