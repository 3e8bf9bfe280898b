package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/backproof/backproof/sandbox"
)

// Seeds (sandbox.Seed): the data directory of a sandbox started once and
// stopped cleanly, kept on the host as a tar file named by what it depends
// on and by its SHA-256, and copied into the data volume of each later
// sandbox of that image before it starts. A PostgreSQL sandbox then skips
// initdb and the entrypoint's first server.

// errSeed means a seed file could not be used; the start is tried again
// from scratch, without it.
var errSeed = errors.New("prepared data unusable")

const (
	seedVersion = "1" // of the file's layout: entries relative to DataDir
	seedsKept   = 8   // files, the least recently used removed first
)

// seed is a prepared data directory on the host.
type seed struct {
	path string
	sum  string // hex SHA-256 of the file
}

// WithSeedDir keeps prepared data directories in dir ("": never).
func WithSeedDir(dir string) Option { return func(d *Docker) { d.seedDir = dir } }

// defaultSeedDir is under the user's cache directory, or "" without one.
func defaultSeedDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "backproof", "sandbox-seeds")
}

func seedKey(imageID string, spec sandbox.Spec) string {
	h := sha256.New()
	for _, s := range []string{seedVersion, imageID, spec.DataDir, spec.Seed.Key} {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// seedFor returns the seed spec may start from, preparing it first when
// there is none. Nil: start from scratch (no seed asked for, files to copy,
// or preparing failed past the start, which is logged). A server that did
// not start to be prepared is the start's error: it would not start from
// scratch either.
func (d *Docker) seedFor(ctx context.Context, spec sandbox.Spec, img image.InspectResponse) (*seed, error) {
	if spec.Seed == nil || len(spec.Files) > 0 || d.seedDir == "" {
		return nil, nil
	}
	if _, _, ok := seedDest(spec.DataDir, imageVolumes(img)); !ok {
		return nil, nil
	}
	key := seedKey(img.ID, spec)
	mu, _ := d.seedLocks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if s := d.findSeed(key); s != nil {
		now := time.Now()
		os.Chtimes(s.path, now, now) // recently used
		return s, nil
	}
	if err := os.MkdirAll(d.seedDir, 0o700); err != nil {
		d.log.DebugContext(ctx, "sandbox starts from scratch: no directory for prepared data", "err", err)
		return nil, nil
	}
	s, err := d.prepare(ctx, spec, img, key)
	var started errNotStarted
	if errors.As(err, &started) {
		return nil, started.error
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		d.log.WarnContext(ctx, "could not prepare the sandbox's data; it starts from scratch", "image", spec.Image, "err", err)
		return nil, nil
	}
	return s, nil
}

// errNotStarted is a start's error while preparing.
type errNotStarted struct{ error }

func imageVolumes(img image.InspectResponse) map[string]struct{} {
	if img.Config == nil {
		return nil
	}
	return img.Config.Volumes
}

// findSeed returns the seed file of key, or nil.
func (d *Docker) findSeed(key string) *seed {
	names, _ := filepath.Glob(filepath.Join(d.seedDir, key+"-*.tar"))
	for _, p := range names {
		sum := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), key+"-"), ".tar")
		if len(sum) == 2*sha256.Size {
			return &seed{path: p, sum: sum}
		}
	}
	return nil
}

// prepare starts a sandbox from scratch, stops its server, which must exit
// cleanly, and keeps its data directory as the seed of key.
func (d *Docker) prepare(ctx context.Context, spec sandbox.Spec, img image.InspectResponse, key string) (*seed, error) {
	began := time.Now()
	inst, err := d.start(ctx, spec, img, nil)
	if err != nil {
		return nil, errNotStarted{err}
	}
	defer inst.Close(ctx)
	id := inst.ctr.GetContainerID()
	// The image's stop signal: a fast shutdown for the postgres images.
	if _, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		return nil, fmt.Errorf("stop: %w", err)
	}
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	if st := res.Container.State; st == nil || st.Running || st.ExitCode != 0 {
		return nil, fmt.Errorf("the server did not shut down cleanly: %s", inst.Logs(ctx))
	}
	cp, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: spec.DataDir})
	if err != nil {
		return nil, err
	}
	defer cp.Content.Close()
	tmp, err := os.CreateTemp(d.seedDir, key+"-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	// No fsync: a file torn by a crash fails its hash and is prepared again.
	err = rebase(io.MultiWriter(tmp, h), cp.Content, path.Base(path.Clean(spec.DataDir)), ".")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("copy the data directory: %w", err)
	}
	s := &seed{sum: hex.EncodeToString(h.Sum(nil))}
	s.path = filepath.Join(d.seedDir, key+"-"+s.sum+".tar")
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return nil, err
	}
	d.log.InfoContext(ctx, "prepared the sandbox's data for later starts", "image", spec.Image, "seconds", time.Since(began).Seconds())
	d.evictSeeds(ctx)
	return s, nil
}

// evictSeeds removes the least recently used seed files beyond seedsKept,
// and temporary files a crashed run left an hour ago or more.
func (d *Docker) evictSeeds(ctx context.Context) {
	entries, err := os.ReadDir(d.seedDir)
	if err != nil {
		return
	}
	type file struct {
		path string
		used time.Time
	}
	var seeds []file
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(d.seedDir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".tar"):
			seeds = append(seeds, file{p, info.ModTime()})
		case strings.HasSuffix(e.Name(), ".tmp") && time.Since(info.ModTime()) > time.Hour:
			os.Remove(p)
		}
	}
	slices.SortFunc(seeds, func(a, b file) int { return b.used.Compare(a.used) })
	for _, f := range seeds[min(len(seeds), seedsKept):] {
		if err := os.Remove(f.path); err == nil {
			d.log.DebugContext(ctx, "removed prepared sandbox data", "file", f.path)
		}
	}
}

// seedDest is where a seed is copied for dataDir: the image volume that
// holds it and dataDir's path inside. A data directory outside the image's
// volumes is on the read-only root: no seed.
func seedDest(dataDir string, volumes map[string]struct{}) (dest, prefix string, ok bool) {
	dataDir = path.Clean("/" + dataDir)
	for v := range volumes {
		v = path.Clean("/" + v)
		if dataDir == v {
			return v, ".", true
		}
		if rel, in := strings.CutPrefix(dataDir, strings.TrimSuffix(v, "/")+"/"); in {
			return v, rel, true
		}
	}
	return "", "", false
}

// copySeed copies s into a created container, its entries under prefix of
// dest, and checks its hash: errSeed when the file is not the one prepared.
func (d *Docker) copySeed(ctx context.Context, id string, s *seed, dest, prefix string) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("%w: %w", errSeed, err)
	}
	defer f.Close()
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rebase(pw, io.TeeReader(f, h), ".", prefix)) }()
	_, err = d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dest, Content: pr, CopyUIDGID: true})
	pr.CloseWithError(errors.New("copy ended"))
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: copy into the sandbox: %w", errSeed, err)
	}
	return checkSum(h, s)
}

func checkSum(h hash.Hash, s *seed) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != s.sum {
		return fmt.Errorf("%w: %s has SHA-256 %s, not the %s it was written with", errSeed, s.path, got, s.sum)
	}
	return nil
}

// rebase copies the tar archive r to w with every entry moved from under
// from to under to ("." for the archive's top), and refuses an entry
// outside from or with ".." in its path. The top directory itself is
// dropped when to is ".": the destination exists.
func rebase(w io.Writer, r io.Reader, from, to string) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := moveEntry(hdr.Name, from, to)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, err = moveEntry(hdr.Linkname, from, to); err != nil || hdr.Linkname == "" {
				return fmt.Errorf("hard link %q out of the data directory", hdr.Linkname)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// moveEntry moves the entry name from under from to under to; "" is the top
// directory dropped.
func moveEntry(name, from, to string) (string, error) {
	dir := strings.HasSuffix(name, "/")
	clean := path.Clean(name)
	if !fs.ValidPath(clean) {
		return "", fmt.Errorf("entry %q: not a relative path inside the archive", name)
	}
	rel, ok := strings.CutPrefix(clean, from+"/")
	switch {
	case from == ".":
		rel, ok = clean, true
	case clean == from:
		rel, ok = ".", true
	}
	if !ok {
		return "", fmt.Errorf("entry %q: outside %s", name, from)
	}
	moved := path.Join(to, rel)
	if moved == "." {
		return "", nil
	}
	if dir {
		moved += "/"
	}
	return moved, nil
}
