package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
)

// PostgresImage returns the sandbox image template for postgres built by
// scripts/sandbox-images.sh (no registry is reachable here). It requires
// Docker too.
func PostgresImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	return Require(t, EnvPGImage)
}

// NoSandboxesLeft registers a cleanup that fails the test if any sandbox
// container this process started still exists when the test ends, whatever
// the test's outcome.
func NoSandboxesLeft(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if left := OwnSandboxes(t); len(left) > 0 {
			t.Errorf("%d sandbox containers left behind: %v", len(left), left)
		}
	})
}

// OwnSandboxes lists the sandbox containers (any state) this process started.
func OwnSandboxes(t testing.TB) []string {
	t.Helper()
	return SandboxesOf(t, docker.Owner())
}

// SandboxesOf lists the sandbox containers (any state) of an owner, as
// docker.OwnerOf names a process.
func SandboxesOf(t testing.TB, owner string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", docker.LabelOwner+"="+owner),
	})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID[:12]+" "+string(c.State))
	}
	return ids
}

// StartSandbox starts spec in a Docker sandbox, with a deadline 5 minutes
// away unless spec has one, removed when the test ends, and returns where it
// listens.
func StartSandbox(t testing.TB, spec sandbox.Spec) (string, int) {
	t.Helper()
	ctx := context.Background()
	d, err := docker.New(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if spec.Deadline.IsZero() {
		spec.Deadline = time.Now().Add(5 * time.Minute)
	}
	inst, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst.Addr()
}
