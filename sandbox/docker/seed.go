package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"github.com/backproof/backproof/sandbox"
)

// Seeds (sandbox.Seed) are images: the sandbox image with, in the volume
// that holds DataDir, the data directory of a sandbox started once and
// stopped cleanly. The engine copies an image's content into a new
// container's volume itself, the fastest way in: a copy through the API
// (CopyToContainer) of PostgreSQL's 1,000 files took 0.6 s, about as long
// as the initdb it saves. Built with the engine's classic builder; where it
// cannot build, sandboxes start from scratch.

// LabelSeed marks a seed image; its value is the seed's key.
const LabelSeed = "io.backproof.seed"

const (
	seedRepo    = "backproof-seed"
	seedVersion = "1" // of how seed images are made
	seedsKept   = 8   // seed images, the oldest removed first
)

// WithoutSeeds makes every sandbox start from scratch.
func WithoutSeeds() Option { return func(d *Docker) { d.noSeeds = true } }

// seedKey names what the prepared data depends on: the image, the data
// directory and the environment but the variables set per start.
func seedKey(imageID string, spec sandbox.Spec) string {
	parts := []string{seedVersion, imageID, spec.DataDir, spec.Seed.Variant}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if !slices.Contains(spec.Seed.PerStart, k) {
			parts = append(parts, k+"="+spec.Env[k])
		}
	}
	h := sha256.New()
	for _, s := range parts {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// seedFor returns the seed image spec may start from, building it first
// when there is none, or nil to start from scratch: no seed asked for,
// files to copy, or building failed past the server's start (logged). A
// server that did not start is the start's error: it would not start from
// scratch either.
func (d *Docker) seedFor(ctx context.Context, spec sandbox.Spec, img image.InspectResponse) (*image.InspectResponse, error) {
	if spec.Seed == nil || len(spec.Files) > 0 || d.noSeeds {
		return nil, nil
	}
	if _, ok := seedDir(spec.DataDir, imageVolumes(img)); !ok {
		return nil, nil
	}
	key := seedKey(img.ID, spec)
	mu, _ := d.seedLocks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	ref := seedRepo + ":" + key
	if res, err := d.cli.ImageInspect(ctx, ref); err == nil {
		return &res.InspectResponse, nil
	}
	err := d.prepare(ctx, spec, img, key)
	var notStarted errNotStarted
	if errors.As(err, &notStarted) {
		return nil, notStarted.error
	}
	if err == nil {
		var res client.ImageInspectResult
		if res, err = d.cli.ImageInspect(ctx, ref); err == nil {
			return &res.InspectResponse, nil
		}
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	d.log.WarnContext(ctx, "could not prepare the sandbox's data; it starts from scratch", "image", spec.Image, "err", err)
	return nil, nil
}

// errNotStarted is a start's error while preparing.
type errNotStarted struct{ error }

func imageVolumes(img image.InspectResponse) map[string]struct{} {
	if img.Config == nil {
		return nil
	}
	return img.Config.Volumes
}

// seedDir is the image volume that holds dataDir. A data directory outside
// the image's volumes is on the read-only root: no seed.
func seedDir(dataDir string, volumes map[string]struct{}) (string, bool) {
	dataDir = path.Clean("/" + dataDir)
	for v := range volumes {
		v = path.Clean("/" + v)
		if dataDir == v || strings.HasPrefix(dataDir, strings.TrimSuffix(v, "/")+"/") {
			return v, true
		}
	}
	return "", false
}

// prepare starts a sandbox from scratch, stops its server, which must exit
// cleanly, and builds the seed image of key from its data directory.
func (d *Docker) prepare(ctx context.Context, spec sandbox.Spec, img image.InspectResponse, key string) error {
	began := time.Now()
	inst, err := d.start(ctx, spec, img, nil)
	if err != nil {
		return errNotStarted{err}
	}
	defer inst.Close(ctx)
	if p := spec.Seed.Prepare; p != nil {
		if err := p(ctx, inst); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	id := inst.ctr.GetContainerID()
	// The image's stop signal: a fast shutdown for the postgres images.
	if _, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	if st := res.Container.State; st == nil || st.Running || st.ExitCode != 0 {
		return fmt.Errorf("the server did not shut down cleanly: %s", inst.Logs(ctx))
	}
	cp, err := d.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: spec.DataDir})
	if err != nil {
		return err
	}
	defer cp.Content.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(buildContext(pw, cp.Content, img.ID, spec.DataDir, key)) }()
	out, err := d.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{seedRepo + ":" + key},
		Version:     build.BuilderV1,
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("build: %w", err)
	}
	err = buildResult(out.Body)
	out.Body.Close()
	pr.CloseWithError(errors.New("build ended"))
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	d.log.InfoContext(ctx, "prepared the sandbox's data for later starts", "image", spec.Image, "seconds", time.Since(began).Seconds())
	d.removeOldSeeds(ctx)
	return nil
}

// buildContext writes a build context: a Dockerfile that copies the data
// directory, from Docker's copy out (entries under its base name), over
// the base image's, owned as it was. Its label comes first, so that an
// image a cancelled build left behind carries it too (removeOldSeeds).
func buildContext(w io.Writer, data io.Reader, base, dataDir, key string) error {
	tr, tw := tar.NewReader(data), tar.NewWriter(w)
	from := path.Base(path.Clean(dataDir))
	owner := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := moveEntry(hdr.Name, from, "data")
		if err != nil {
			return err
		}
		if name == "data/" {
			owner = strconv.Itoa(hdr.Uid) + ":" + strconv.Itoa(hdr.Gid)
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, err = moveEntry(hdr.Linkname, from, "data"); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if owner == "" {
		return fmt.Errorf("no %s in the copy of the data directory", from)
	}
	df := fmt.Appendf(nil, "FROM %s\nLABEL %s=%s\nCOPY --chown=%s data/ %s/\n", base, LabelSeed, key, owner, path.Clean(dataDir))
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(df); err != nil {
		return err
	}
	return tw.Close()
}

// buildResult reads a build's output to its end: the first error it
// reports, if any.
func buildResult(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail bytes.Buffer
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return fmt.Errorf("%s (%s)", m.Error.Message, strings.TrimSpace(tail.String()))
		}
		tail.Reset()
		tail.WriteString(m.Stream)
	}
}

// removeOldSeeds keeps the seedsKept newest seed images, and removes what
// cancelled builds left (untagged). One in use by a container stays.
func (d *Docker) removeOldSeeds(ctx context.Context) {
	list, err := d.cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", LabelSeed)})
	if err != nil {
		return
	}
	var tagged, old []image.Summary
	for _, im := range list.Items {
		if len(im.RepoTags) > 0 {
			tagged = append(tagged, im)
		} else {
			old = append(old, im)
		}
	}
	slices.SortFunc(tagged, func(a, b image.Summary) int { return int(b.Created - a.Created) })
	for _, im := range append(old, tagged[min(len(tagged), seedsKept):]...) {
		_, err := d.cli.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{PruneChildren: true})
		if err == nil || errdefs.IsNotFound(err) {
			d.log.DebugContext(ctx, "removed an old seed image", "image", shortID(im.ID))
		}
	}
}

// moveEntry moves the tar entry name from under from to under to, refusing
// one outside from or with ".." in its path.
func moveEntry(name, from, to string) (string, error) {
	dir := strings.HasSuffix(name, "/")
	clean := path.Clean(name)
	if !fs.ValidPath(clean) {
		return "", fmt.Errorf("entry %q: not a relative path inside the archive", name)
	}
	rel, ok := strings.CutPrefix(clean, from+"/")
	if clean == from {
		rel, ok = ".", true
	}
	if !ok {
		return "", fmt.Errorf("entry %q: outside %s", name, from)
	}
	moved := path.Join(to, rel)
	if dir || rel == "." {
		moved += "/"
	}
	return moved, nil
}
