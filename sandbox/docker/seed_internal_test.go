package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o600, Typeflag: tar.TypeReg, Size: int64(len(n))}
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

// Docker's copy out names entries by the directory's base name; a seed
// holds them relative to it, and goes back in under the data directory's
// path in its volume.
func TestRebase(t *testing.T) {
	out := tarOf(t, "data/", "data/PG_VERSION", "data/base/", "data/base/1/112")
	var seed bytes.Buffer
	if err := rebase(&seed, bytes.NewReader(out), "data", "."); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(namesOf(t, seed.Bytes()), " "), "PG_VERSION base/ base/1/112"; got != want {
		t.Errorf("seed entries %q, want %q", got, want)
	}
	var in bytes.Buffer
	if err := rebase(&in, bytes.NewReader(seed.Bytes()), ".", "18/docker"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(namesOf(t, in.Bytes()), " "), "18/docker/PG_VERSION 18/docker/base/ 18/docker/base/1/112"; got != want {
		t.Errorf("entries under a prefix %q, want %q", got, want)
	}
	for _, bad := range [][]string{{"data/../etc/passwd"}, {"/etc/passwd"}, {"other/x"}, {"datax/y"}} {
		err := rebase(io.Discard, bytes.NewReader(tarOf(t, bad...)), "data", ".")
		if err == nil || !strings.Contains(err.Error(), "entry") {
			t.Errorf("%q: %v, want an error naming the entry", bad, err)
		}
	}
}

func TestSeedDest(t *testing.T) {
	for _, c := range []struct {
		dataDir string
		volumes []string
		dest    string
		prefix  string
	}{
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql/data"}, "/var/lib/postgresql/data", "."},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql"}, "/var/lib/postgresql", "data"},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgresql/"}, "/var/lib/postgresql", "data"},
		{"/var/lib/postgresql/data", []string{"/var/lib/postgres"}, "", ""},
		{"/data", nil, "", ""},
	} {
		vols := map[string]struct{}{}
		for _, v := range c.volumes {
			vols[v] = struct{}{}
		}
		dest, prefix, ok := seedDest(c.dataDir, vols)
		if dest != c.dest || prefix != c.prefix || ok != (c.dest != "") {
			t.Errorf("seedDest(%q, %v) = %q, %q, %t", c.dataDir, c.volumes, dest, prefix, ok)
		}
	}
}
