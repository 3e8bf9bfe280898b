package docker_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backproof/backproof/sandbox"
)

// Files are in place, whole and with their mode, when the server starts; a
// file that cannot be read fails the start and leaves no container.
func TestStartWithFiles(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := make([]byte, 8<<20)
	rand.Read(data)
	host := filepath.Join(dir, "blob")
	if err := os.WriteFile(host, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	spec, _ := e.spec(t)
	spec.Files = []sandbox.File{{HostPath: host, Path: "/srv/blob", Mode: 0o640}}
	inst := e.start(t, spec)
	id := e.the(t)
	execIn(t, e.cli, id, "sh", "-c", "echo '"+hex.EncodeToString(sum[:])+"  /srv/blob' | sha256sum -c - && test \"$(stat -c %a /srv/blob)\" = 640")
	inst.Close(context.Background())

	spec.Files = []sandbox.File{{HostPath: filepath.Join(dir, "missing"), Path: "/tmp/missing"}}
	_, err := e.d.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
	if left := e.containers(t); len(left) != 0 {
		t.Errorf("%d containers left after a failed start", len(left))
	}
}
