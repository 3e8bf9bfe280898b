package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/backproof/backproof/sandbox"
)

func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o600, Typeflag: tar.TypeReg, Size: int64(len(n)), Uid: 999, Gid: 998}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o700, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			io.WriteString(tw, n)
		}
	}
	tw.Close()
	return b.Bytes()
}

func namesOf(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// Docker's copy out names entries by the directory's base name; the build
// context holds them under data/, with a Dockerfile that copies them over
// the data directory, owned by the directory's owner.
func TestBuildContext(t *testing.T) {
	out := tarOf(t, "data/", "data/PG_VERSION", "data/base/", "data/base/1/112")
	var ctx bytes.Buffer
	if err := buildContext(&ctx, bytes.NewReader(out), "sha256:abc", "/var/lib/postgresql/data", "k1"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(namesOf(t, ctx.Bytes()), " "), "data/ data/PG_VERSION data/base/ data/base/1/112 Dockerfile"; got != want {
		t.Errorf("entries %q, want %q", got, want)
	}
	tr := tar.NewReader(bytes.NewReader(ctx.Bytes()))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "Dockerfile" {
			df, _ := io.ReadAll(tr)
			if want := "FROM sha256:abc\nLABEL io.backproof.seed=k1\nCOPY --chown=999:998 data/ /var/lib/postgresql/data/\n"; string(df) != want {
				t.Errorf("Dockerfile %q, want %q", df, want)
			}
			break
		}
	}
	for _, bad := range [][]string{{"data/../etc/passwd"}, {"/etc/passwd"}, {"other/x"}, {"datax/y"}} {
		err := buildContext(io.Discard, bytes.NewReader(tarOf(t, bad...)), "x", "/var/lib/postgresql/data", "k")
		if err == nil || !strings.Contains(err.Error(), "entry") {
			t.Errorf("%q: %v, want an error naming the entry", bad, err)
		}
	}
	if err := buildContext(io.Discard, bytes.NewReader(tarOf(t, "data/x")), "x", "/var/lib/postgresql/data", "k"); err == nil {
		t.Error("a copy without its top directory made a context")
	}
}

func TestSeedDir(t *testing.T) {
	for _, c := range []struct {
		dataDir string
		volumes []string
		dir     string
	}{
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql/data"}, "/var/lib/postgresql/data"},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql"}, "/var/lib/postgresql"},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql/"}, "/var/lib/postgresql"},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgres"}, ""},
		{"/data", nil, ""},
	} {
		vols := map[string]struct{}{}
		for _, v := range c.volumes {
			vols[v] = struct{}{}
		}
		dir, ok := seedDir(c.dataDir, vols)
		if dir != c.dir || ok != (c.dir != "") {
			t.Errorf("seedDir(%q, %v) = %q, %t", c.dataDir, c.volumes, dir, ok)
		}
	}
}

// A seed matches the image, the data directory and the environment, but the
// variables set per start.
func TestSeedKey(t *testing.T) {
	spec := func(env map[string]string) sandbox.Spec {
		return sandbox.Spec{DataDir: "/data", Env: env, Seed: &sandbox.Seed{PerStart: []string{"PASSWORD"}}}
	}
	base := seedKey("sha256:1", spec(map[string]string{"DB": "a", "PASSWORD": "x"}))
	if k := seedKey("sha256:1", spec(map[string]string{"DB": "a", "PASSWORD": "y"})); k != base {
		t.Error("another password gave another seed")
	}
	for _, k := range []string{
		seedKey("sha256:1", spec(map[string]string{"DB": "b", "PASSWORD": "x"})),
		seedKey("sha256:1", spec(map[string]string{"DB": "a", "PASSWORD": "x", "MORE": ""})),
		seedKey("sha256:2", spec(map[string]string{"DB": "a", "PASSWORD": "x"})),
	} {
		if k == base {
			t.Error("a different environment or image gave the same seed")
		}
	}
}
