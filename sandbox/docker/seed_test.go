package docker_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/sandbox/docker"
)

// A postgres sandbox with a Seed: the first start builds the seed image
// once (a server started and stopped cleanly, its data directory over the
// image's), and it and later starts run one server on a copy of that data
// (no initdb, no entrypoint's first server), each its own copy, reporting
// the configured image. A seed image removed is built again; WithoutSeeds
// starts from scratch.
func TestSeed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := e.imageOf(t, e.image)
	spec, srv := e.spec(t)
	spec.Env["BACKPROOF_TEST_SEED"] = e.tag // a seed of this test's own
	key := docker.SeedKey(base.ID, spec)
	e.removeSeeds(t, key)
	built := func() []string { return e.seedImages(t, key) }

	first := e.start(t, spec)
	ours := built()
	if len(ours) != 1 {
		t.Fatalf("%d seed images built, want 1", len(ours))
	}
	if n := e.readyLines(t, e.the(t)); n != 1 {
		t.Errorf("the seeded server logged ready %d times, want 1", n)
	}
	if ref, id := first.Image(); ref != spec.Image || id != base.ID {
		t.Errorf("Image() = %q, %q; want the configured image %q, %q", ref, id, spec.Image, base.ID)
	}
	// The container runs the seed image, the configured one plus a layer.
	if c := e.inspect(t, e.the(t)); c.Image != ours[0] {
		t.Errorf("the container runs image %s, not the seed image %s", c.Image, ours[0])
	}
	if layers := e.imageOf(t, ours[0]).RootFS.Layers; len(layers) != len(base.RootFS.Layers)+1 || !slices.Equal(layers[:len(base.RootFS.Layers)], base.RootFS.Layers) {
		t.Errorf("the seed image's layers %v are not the configured image's %v and one more", layers, base.RootFS.Layers)
	}
	conn := connect(t, first, srv)
	if dbs := databases(t, conn); !slices.Equal(dbs, []string{"postgres"}) {
		t.Errorf("the seeded cluster has databases %v, want only postgres (Seed.Prepare)", dbs)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE only_in_first (x int)"); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)

	spec, srv = e.spec(t)
	spec.Env["BACKPROOF_TEST_SEED"] = e.tag
	second := e.start(t, spec)
	if got := built(); !slices.Equal(got, ours) {
		t.Errorf("seed images %v after a second start, want %v", got, ours)
	}
	if n := e.readyLines(t, e.the(t)); n != 1 {
		t.Errorf("the second seeded server logged ready %d times, want 1", n)
	}
	var missing bool
	if err := connect(t, second, srv).QueryRow(ctx, "SELECT to_regclass('only_in_first') IS NULL").Scan(&missing); err != nil || !missing {
		t.Errorf("the second sandbox sees the first one's table (%v)", err)
	}
	second.Close(ctx)

	if _, err := e.cli.ImageRemove(ctx, ours[0], client.ImageRemoveOptions{PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	third := e.start(t, spec)
	if got := built(); len(got) != 1 {
		t.Errorf("%d seed images after the first was removed, want 1 built again", len(got))
	}
	if n := e.readyLines(t, e.the(t)); n != 1 {
		t.Errorf("the server on the rebuilt seed logged ready %d times, want 1", n)
	}
	connect(t, third, srv)
	third.Close(ctx)

	scratch := newEnv(t, docker.WithoutSeeds())
	spec, srv = scratch.spec(t)
	if dbs := databases(t, connect(t, scratch.start(t, spec), srv)); len(dbs) != 3 {
		t.Errorf("WithoutSeeds: databases %v, want initdb's three", dbs)
	}
	if n := scratch.readyLines(t, scratch.the(t)); n != 2 {
		t.Errorf("WithoutSeeds: the server logged ready %d times, want 2", n)
	}
}

// removeSeeds removes the seed images of key when the test ends. Other
// tests (packages run at once) build and use seeds of their own keys.
func (e *env) removeSeeds(t *testing.T, key string) {
	t.Cleanup(func() {
		for _, id := range e.seedImages(t, key) {
			e.cli.ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	})
}

func (e *env) seedImages(t *testing.T, key string) []string {
	t.Helper()
	list, err := e.cli.ImageList(context.Background(), client.ImageListOptions{Filters: make(client.Filters).Add("label", docker.LabelSeed+"="+key)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, im := range list.Items {
		ids = append(ids, im.ID)
	}
	return ids
}

func (e *env) imageOf(t *testing.T, ref string) image.InspectResponse {
	t.Helper()
	res, err := e.cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return res.InspectResponse
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

func databases(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, _ := conn.Query(context.Background(), "SELECT datname FROM pg_database ORDER BY 1")
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return dbs
}
