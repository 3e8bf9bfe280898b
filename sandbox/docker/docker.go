// Package docker runs sandboxes as Docker containers through
// testcontainers-go. Every container carries labels naming its owner process
// and deadline, so a later run removes what a crashed one left behind.
// Containers have no network (the server is reached through the engine,
// tunnel.go), a read-only root filesystem (the image's volumes and tmpfs on
// /tmp and /run are writable), and run unprivileged, with no new privileges
// and only the capabilities database images need to drop to their own user.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/backproof/backproof/sandbox"
)

// Labels on every sandbox container.
const (
	LabelSandbox  = "io.backproof.sandbox"  // "1"
	LabelOwner    = "io.backproof.owner"    // host/pid/start-ticks of the process that started it
	LabelDeadline = "io.backproof.deadline" // unix seconds after which it may be removed
)

// capabilities are what the official database images' entrypoints need to
// fix data directory ownership and switch to their own user.
var capabilities = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}

// Docker starts sandboxes on the Docker engine named by the environment
// (DOCKER_HOST, or the local socket).
type Docker struct {
	log       *slog.Logger
	cli       *testcontainers.DockerClient
	labels    map[string]string
	owner     string
	noSeeds   bool
	seedLocks sync.Map // seed key: *sync.Mutex
	// PullTimeout bounds pulling an image that is not present locally.
	PullTimeout time.Duration
}

var _ sandbox.Provider = (*Docker)(nil)

// Option configures a Docker provider.
type Option func(*Docker)

// WithLabels adds labels to every container this provider starts (tests use
// one to find their own containers).
func WithLabels(l map[string]string) Option {
	return func(d *Docker) {
		for k, v := range l {
			d.labels[k] = v
		}
	}
}

var setLogger sync.Once

// New connects to the Docker engine and removes leftover sandboxes: those
// past their deadline and those whose owner process on this host is gone.
func New(ctx context.Context, log *slog.Logger, opts ...Option) (*Docker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// testcontainers-go prints to stderr by default; its messages are debug
	// output of ours.
	setLogger.Do(func() { tclog.SetDefault(slogPrintf{log}) })
	// Ryuk, testcontainers-go's reaper, would be one more container to pull
	// and trust; the labels above do its job. Its settings are read from
	// the environment only.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}

	// testcontainers-go falls back to the default socket when DOCKER_HOST
	// does not answer; a user who named an engine must get that one or an
	// error.
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		if err := ping(ctx, client.FromEnv); err != nil {
			return nil, fmt.Errorf("%w: docker engine at DOCKER_HOST=%s not reachable: %v", sandbox.ErrUnavailable, host, err)
		}
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: docker: %v", sandbox.ErrUnavailable, err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: docker engine not reachable: %v", sandbox.ErrUnavailable, err)
	}
	d := &Docker{
		log:         log,
		cli:         cli,
		labels:      map[string]string{},
		owner:       OwnerOf(os.Getpid()),
		PullTimeout: 10 * time.Minute,
	}
	for _, o := range opts {
		o(d)
	}
	if _, err := d.Sweep(ctx); err != nil {
		log.WarnContext(ctx, "could not remove leftover sandboxes", "err", err)
	}
	return d, nil
}

// Ping reports whether an engine answers at DOCKER_HOST, or at the default
// socket. Ask it before New when an engine may yet be started: New's first
// look for an engine is remembered for the life of the process (by
// testcontainers-go).
func Ping(ctx context.Context) error { return ping(ctx, client.FromEnv) }

func ping(ctx context.Context, opts ...client.Opt) error {
	c, err := client.New(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Ping(ctx, client.PingOptions{})
	return err
}

// Close releases the connection to the engine.
func (d *Docker) Close() error { return d.cli.Close() }

// Start implements sandbox.Provider. A spec with a Seed starts from the
// prepared data (seed.go), prepared first if there is none.
func (d *Docker) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Instance, error) {
	img, err := d.ensureImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	s, err := d.seedFor(ctx, spec, img)
	if err != nil {
		return nil, err
	}
	inst, err := d.start(ctx, spec, img, s)
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// start starts a sandbox of img, from the seed image s unless it is nil.
func (d *Docker) start(ctx context.Context, spec sandbox.Spec, img image.InspectResponse, s *image.InspectResponse) (*instance, error) {
	var imgVolumes map[string]struct{}
	var relayLabel string
	if img.Config != nil {
		imgVolumes, relayLabel = img.Config.Volumes, img.Config.Labels[LabelRelay]
	}
	port, err := network.ParsePort(spec.Port)
	if err != nil || port.Proto() != network.TCP {
		return nil, fmt.Errorf("sandbox port %q: not a TCP port", spec.Port)
	}
	labels := map[string]string{
		LabelSandbox:  "1",
		LabelOwner:    d.owner,
		LabelDeadline: strconv.FormatInt(spec.Deadline.Unix(), 10),
	}
	for k, v := range d.labels {
		labels[k] = v
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	readyCount, ref := spec.ReadyCount, spec.Image
	if s != nil {
		readyCount, ref = spec.Seed.ReadyCount, s.ID
	}
	ready := wait.ForLog(spec.Ready).WithOccurrence(max(readyCount, 1)).WithPollInterval(50 * time.Millisecond)
	if !spec.Deadline.IsZero() {
		ready = ready.WithStartupTimeout(time.Until(spec.Deadline))
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(slogPrintf{d.log}),
		testcontainers.WithEnv(spec.Env),
		testcontainers.WithLabels(labels),
		testcontainers.WithWaitStrategy(ready),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Privileged = false
			hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
			hc.CapDrop = []string{"ALL"}
			hc.CapAdd = capabilities
			hc.Memory = spec.Memory
			hc.MemorySwap = spec.Memory // no swap beyond the limit
			hc.NanoCPUs = int64(spec.CPUs * 1e9)
			pids := int64(512)
			hc.PidsLimit = &pids
			// No route out: loopback only (tunnel.go).
			// (testcontainers-go still lists the image's ports as bindings,
			// which a container without a network cannot publish.)
			hc.NetworkMode = "none"
			hc.PublishAllPorts = false
			hc.ReadonlyRootfs = true
			// Sockets and pid files; data goes to the image's volumes, which
			// stay writable and on disk.
			hc.Tmpfs = map[string]string{"/tmp": "rw,noexec,nosuid,nodev", "/run": "rw,noexec,nosuid,nodev"}
			// Files go in before the start, when only volumes take them.
			for _, dir := range fileDirs(spec.Files, imgVolumes) {
				delete(hc.Tmpfs, dir)
				hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Target: dir})
			}
		}),
	}
	if spec.Cmd != nil {
		opts = append(opts, testcontainers.WithCmd(spec.Cmd...))
	}

	created := time.Now()
	ctr, err := run(ctx, ref, opts, func(ctx context.Context, id string) error {
		return d.copyFiles(ctx, id, spec.Files)
	})
	if err != nil {
		msg := err.Error()
		if ctr != nil {
			if tail := containerLogs(context.WithoutCancel(ctx), ctr); tail != "" {
				msg += "; container output: " + tail
			}
			terminate(context.WithoutCancel(ctx), d.cli, ctr, d.log)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start sandbox %s: %w", spec.Image, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: start sandbox %s: %s", sandbox.ErrUnavailable, spec.Image, msg)
	}
	inst := &instance{ctr: ctr, cli: d.cli, created: created, ref: spec.Image, imageID: img.ID, digest: repoDigest(img.RepoDigests), log: d.log}
	inst.relay, err = sandbox.NewRelay(execRelay(d.cli.Client, ctr.GetContainerID(), relayCommand(relayLabel, int(port.Num()))), d.log)
	if err != nil {
		inst.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w: sandbox %s: %v", sandbox.ErrUnavailable, spec.Image, err)
	}
	inst.host, inst.port = inst.relay.Addr()
	d.log.DebugContext(ctx, "sandbox ready", "image", spec.Image, "container", shortID(ctr.GetContainerID()), "port", inst.port)
	return inst, nil
}

// run creates and starts a container like testcontainers.Run, but creates it
// whatever ctx says: the engine completes a create whose caller has gone
// away, and that container would be left behind with no id to remove it by.
// Starting and waiting for the server follow ctx; beforeStart runs between
// create and start.
func run(ctx context.Context, image string, opts []testcontainers.ContainerCustomizer,
	beforeStart func(ctx context.Context, id string) error) (*testcontainers.DockerContainer, error) {
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: image}}
	for _, o := range opts {
		if err := o.Customize(&req); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	c, err := testcontainers.GenericContainer(cctx, req)
	cancel()
	ctr, _ := c.(*testcontainers.DockerContainer)
	if err != nil {
		return ctr, err
	}
	if err := context.Cause(ctx); err != nil {
		return ctr, err
	}
	if err := beforeStart(ctx, ctr.GetContainerID()); err != nil {
		return ctr, err
	}
	return ctr, ctr.Start(ctx)
}

// fileDirs lists the directories of files that no image volume holds: each
// gets an anonymous volume of its own (removed with the container), since
// the root filesystem is read-only.
func fileDirs(files []sandbox.File, volumes map[string]struct{}) []string {
	var dirs []string
	for _, f := range files {
		dir := path.Dir(path.Clean("/" + f.Path))
		inVolume := false
		for v := range volumes {
			if dir == v || strings.HasPrefix(dir, strings.TrimSuffix(v, "/")+"/") {
				inVolume = true
			}
		}
		if !inVolume && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// copyFiles copies files into a created container. The tar archive the
// engine takes is written as it is sent, so a large file never sits in
// memory (testcontainers-go's own Files read each file whole).
func (d *Docker) copyFiles(ctx context.Context, id string, files []sandbox.File) error {
	// One copy per directory: the engine lets a copy into a read-only
	// root through only when its destination is in a volume.
	var dirs []string
	for _, f := range files {
		if dir := path.Dir(path.Clean("/" + f.Path)); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	for _, dir := range dirs {
		var in []sandbox.File
		for _, f := range files {
			if path.Dir(path.Clean("/"+f.Path)) == dir {
				in = append(in, f)
			}
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(sandbox.WriteTar(pw, in, baseName)) }()
		_, err := d.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dir, Content: pr})
		pr.CloseWithError(errors.New("copy ended")) // unblocks the writer if the engine stopped reading
		if err != nil {
			return fmt.Errorf("copy files into the sandbox: %w", err)
		}
	}
	return nil
}

// baseName names a file copied into its directory by its base name.
func baseName(f sandbox.File) string { return path.Base(path.Clean("/" + f.Path)) }

// HasImage reports whether ref is present on the engine, without pulling.
func (d *Docker) HasImage(ctx context.Context, ref string) bool {
	_, err := d.cli.ImageInspect(ctx, ref)
	return err == nil
}

// Pull pulls ref from its registry.
func (d *Docker) Pull(ctx context.Context, ref string) error {
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	return resp.Wait(ctx)
}

// ensureImage inspects ref, pulling it once (no retry loop) when it is
// missing, so an air-gapped site gets a clear error at once.
func (d *Docker) ensureImage(ctx context.Context, ref string) (image.InspectResponse, error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return res.InspectResponse, nil
	}
	if ctx.Err() != nil {
		return image.InspectResponse{}, fmt.Errorf("start sandbox %s: %w", ref, context.Cause(ctx))
	}
	d.log.InfoContext(ctx, "pulling sandbox image", "image", ref)
	pctx, cancel := context.WithTimeout(ctx, d.PullTimeout)
	defer cancel()
	err = d.Pull(pctx, ref)
	if err == nil {
		if res, err = d.cli.ImageInspect(ctx, ref); err == nil {
			return res.InspectResponse, nil
		}
	}
	if ctx.Err() != nil {
		return image.InspectResponse{}, fmt.Errorf("pull sandbox image %s: %w", ref, context.Cause(ctx))
	}
	return image.InspectResponse{}, fmt.Errorf("%w: sandbox image %s is not present locally and could not be pulled: %v", sandbox.ErrUnavailable, ref, err)
}

// repoDigest is the registry digest the image was pulled by
// ("postgres@sha256:..."), or "" for an image built or imported locally.
func repoDigest(digests []string) string {
	if len(digests) == 0 {
		return ""
	}
	return digests[0]
}

// Sweep removes sandboxes past their deadline and those whose owner was a
// process on this host that is gone. It returns how many it removed.
func (d *Docker) Sweep(ctx context.Context) (int, error) {
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelSandbox),
	})
	if err != nil {
		return 0, fmt.Errorf("list sandboxes: %w", err)
	}
	now := time.Now()
	var removed int
	var errs []error
	for _, c := range list.Items {
		why := leftover(c.Labels, now)
		if why == "" {
			continue
		}
		_, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
			continue // another run's sweep got there first ("already in progress")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", shortID(c.ID), err))
			continue
		}
		removed++
		d.log.InfoContext(ctx, "removed leftover sandbox", "container", shortID(c.ID), "reason", why)
	}
	return removed, errors.Join(errs...)
}

// leftover says why a labelled container may be removed, or "" when its
// owner may still be using it.
func leftover(labels map[string]string, now time.Time) string {
	if dl, err := strconv.ParseInt(labels[LabelDeadline], 10, 64); err == nil && dl > 0 && now.Unix() > dl {
		return "past its deadline"
	}
	host, pid, ok := parseOwner(labels[LabelOwner])
	if !ok {
		return "no owner label"
	}
	if h, _ := os.Hostname(); host != h {
		return "" // another host's; only its deadline removes it
	}
	if OwnerOf(pid) != labels[LabelOwner] {
		return "its owner process is gone"
	}
	return ""
}

// Owner is the owner label value of the containers this process starts.
func Owner() string { return OwnerOf(os.Getpid()) }

// OwnerOf names a process uniquely on this host: hostname, pid and, where
// /proc has it, the process start time, so a reused pid is not mistaken for
// the owner.
func OwnerOf(pid int) string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", h, pid, startTicks(pid))
}

func parseOwner(s string) (host string, pid int, ok bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, false
	}
	return parts[0], pid, true
}

// startTicks is field 22 of /proc/PID/stat, or "gone" when the process does
// not exist, or "" where /proc is unavailable.
func startTicks(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, statErr := os.Stat("/proc/self/stat"); statErr == nil {
				return "gone"
			}
		}
		return ""
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

type instance struct {
	ctr        *testcontainers.DockerContainer
	cli        *testcontainers.DockerClient
	created    time.Time
	ref        string
	imageID    string
	digest     string
	relay      *sandbox.Relay
	host       string
	port       int
	log        *slog.Logger
	closeOnce  sync.Once
	closeError error
}

func (i *instance) Addr() (string, int)     { return i.host, i.port }
func (i *instance) Image() (string, string) { return i.ref, i.imageID }

// ImageDigest implements sandbox.Digester.
func (i *instance) ImageDigest() string { return i.digest }

func (i *instance) Check(ctx context.Context) error {
	st, err := i.ctr.State(ctx)
	if err != nil {
		return fmt.Errorf("%w: sandbox state: %v", sandbox.ErrUnavailable, err)
	}
	switch {
	case st.OOMKilled:
		return fmt.Errorf("%w: sandbox was killed for exceeding its memory limit (sandbox.memory)", sandbox.ErrUnavailable)
	case i.oomKilled(ctx):
		// A server survives when the kernel kills one of its processes (a
		// PostgreSQL backend), so the container's state does not show it.
		return fmt.Errorf("%w: a sandbox process was killed for exceeding its memory limit (sandbox.memory)", sandbox.ErrUnavailable)
	case !st.Running:
		return fmt.Errorf("%w: sandbox exited (status %s, code %d)", sandbox.ErrUnavailable, st.Status, st.ExitCode)
	}
	return nil
}

// oomKilled reports whether the engine has recorded an out-of-memory kill in
// this container since it was created. The engine keeps only its last 256
// events, which is enough when asked right after a failure the kill caused;
// when the engine cannot tell, the answer is no.
func (i *instance) oomKilled(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res := i.cli.Events(ctx, client.EventsListOptions{
		Since:   i.created.Add(-time.Second).UTC().Format(time.RFC3339Nano),
		Until:   time.Now().UTC().Format(time.RFC3339Nano),
		Filters: make(client.Filters).Add("type", "container").Add("container", i.ctr.GetContainerID()).Add("event", "oom"),
	})
	select {
	case <-res.Messages:
		return true
	case err := <-res.Err: // io.EOF: the engine has sent every event up to Until
		if !errors.Is(err, io.EOF) {
			i.log.DebugContext(ctx, "could not read the engine's events", "container", shortID(i.ctr.GetContainerID()), "err", err)
		}
		return false
	}
}

func (i *instance) Logs(ctx context.Context) string { return containerLogs(ctx, i.ctr) }

func (i *instance) Close(ctx context.Context) error {
	i.closeOnce.Do(func() {
		if i.relay != nil {
			i.relay.Close()
		}
		i.closeError = terminate(ctx, i.cli, i.ctr, i.log)
	})
	return i.closeError
}

// terminate kills and removes a container with its anonymous volumes, with
// its own timeout so that a cancelled caller still cleans up.
func terminate(ctx context.Context, cli *testcontainers.DockerClient, ctr *testcontainers.DockerContainer, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	// Nothing in a sandbox is worth a graceful shutdown: one forced remove
	// kills it and removes it.
	_, err := cli.ContainerRemove(ctx, ctr.GetContainerID(), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if errdefs.IsNotFound(err) {
		err = nil
	}
	if err != nil && (errdefs.IsConflict(err) || strings.Contains(err.Error(), "already in progress")) {
		// Another remove (testcontainers' own, after a failed start) is under
		// way: done once the container is gone.
		err = awaitGone(ctx, ctr)
	}
	if err != nil {
		log.WarnContext(ctx, "could not remove sandbox; the next run removes it", "container", shortID(ctr.GetContainerID()), "err", err)
		return fmt.Errorf("remove sandbox %s: %w", shortID(ctr.GetContainerID()), err)
	}
	return nil
}

// awaitGone waits until the engine no longer knows the container.
func awaitGone(ctx context.Context, ctr *testcontainers.DockerContainer) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := ctr.State(ctx); err != nil && (errdefs.IsNotFound(err) || strings.Contains(err.Error(), "No such container")) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removal already in progress: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

// containerLogs returns the last lines of a container's output.
func containerLogs(ctx context.Context, ctr *testcontainers.DockerContainer) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	data, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	// Blank lines would take the place of the first line of a message.
	var lines []string
	for l := range strings.Lines(string(data)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// slogPrintf adapts testcontainers-go's Printf logger to slog at debug level.
type slogPrintf struct{ log *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) {
	s.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "testcontainers")
}

// Leftover says why a sandbox with these labels (LabelOwner, LabelDeadline)
// may be removed, or "" while its owner may still use it. Other drivers
// sweep by the same rule.
func Leftover(labels map[string]string, now time.Time) string { return leftover(labels, now) }
