package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
)

// The official postgres image keeps its data in /var/lib/postgresql/18/docker
// from 18 on, in a VOLUME of its own that containerd backs with a directory
// of the node, outside the size-limited data volume (sandbox.kubernetes.disk).
// The sandbox sets PGDATA to the data volume, so the data lands there. The
// image here is the PostgreSQL 18 sandbox image with the official layout.
func TestOfficialPG18Layout(t *testing.T) {
	e := newEnv(t)
	kubeconfig, _ := testenv.Kubeconfig(t)
	base := strings.ReplaceAll(testenv.Require(t, testenv.EnvPGImage), "{major}", "18")
	dockerfile := "FROM " + base + "\nENV PGDATA=/var/lib/postgresql/18/docker\nVOLUME /var/lib/postgresql\n"
	sum := sha256.Sum256([]byte(dockerfile))
	image := "backproof-test/postgres-18-layout:" + hex.EncodeToString(sum[:6])
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "BACKPROOF_K8S_DIR="+filepath.Dir(kubeconfig))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run(dockerfile, "docker", "build", "--quiet", "--tag", image, "-")
	run("", "bash", "../../scripts/k8s.sh", "import", image)

	k := e.provider(t, AccessPodIP)
	eng := postgres.New("")
	spec, srv := eng.Sandbox(image, "pw"+randHex(8), nil)
	spec.Memory, spec.CPUs = 512<<20, 0.5
	spec.Deadline = time.Now().Add(3 * time.Minute)
	ctx := context.Background()
	inst, err := k.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Close(ctx)
	srv.Host, srv.Port = inst.Addr()
	c, err := eng.Open(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	v, err := c.Query(ctx, "SELECT current_setting('data_directory')")
	if err != nil || v.Text != "/var/lib/postgresql/data" {
		t.Errorf("data directory: %+v, %v", v, err)
	}
}
