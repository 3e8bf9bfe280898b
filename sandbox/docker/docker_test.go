package docker_test

// Integration tests on the real Docker engine (scripts/testenv.sh up). They
// run one after another, not in parallel: testenv.NoSandboxesLeft and
// testenv.OwnSandboxes look at every sandbox of this process. Every
// container a test creates also carries a label unique to that test, and
// tests only ever inspect or remove containers carrying their own label
// (other processes may use the same engine at the same time).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/testenv"
	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
)

// labelTest carries a value unique to one test on every container it makes.
const labelTest = "io.backproof.test"

// env is what one Docker test needs: a provider whose containers carry the
// test's own label, a plain engine client to look at them, and the image.
type env struct {
	d     *docker.Docker
	cli   *testcontainers.DockerClient
	image string
	tag   string // value of labelTest for this test
	log   *testenv.Buffer
}

func newEnv(t *testing.T, opts ...docker.Option) *env {
	t.Helper()
	image := strings.ReplaceAll(testenv.PostgresImage(t), "{major}", "15")
	testenv.NoSandboxesLeft(t)
	ctx := context.Background()
	e := &env{image: image, tag: "t" + randHex(t, 6), log: &testenv.Buffer{}}
	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := docker.New(ctx, log, append(opts, docker.WithLabels(map[string]string{labelTest: e.tag}))...)
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	e.d = d
	t.Cleanup(func() { d.Close() })
	e.cli = engineClient(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("provider log:\n%s", e.log.String())
		}
	})
	return e
}

func engineClient(t *testing.T) *testcontainers.DockerClient {
	t.Helper()
	cli, err := testcontainers.NewDockerClientWithOpts(context.Background())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// spec is a postgres sandbox spec with a fresh password, its server (host
// and port still unset) and generous limits; tests adjust what they need.
func (e *env) spec(t *testing.T) (sandbox.Spec, engine.Server) {
	t.Helper()
	spec, srv := postgres.New("").Sandbox(e.image, randHex(t, 12), nil)
	spec.Memory = 512 << 20
	spec.CPUs = 1
	spec.Deadline = time.Now().Add(5 * time.Minute)
	return spec, srv
}

// start starts spec and registers a Close for the end of the test.
func (e *env) start(t *testing.T, spec sandbox.Spec) sandbox.Instance {
	t.Helper()
	begin := time.Now()
	inst, err := e.d.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("sandbox ready in %s", time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := inst.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return inst
}

// containers lists this test's containers (any state) that also carry the
// given labels ("key=value").
func (e *env) containers(t *testing.T, labels ...string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := make(client.Filters).Add("label", labelTest+"="+e.tag)
	for _, l := range labels {
		f.Add("label", l)
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return list.Items
}

// the returns the id of the one container of this test with the given labels.
func (e *env) the(t *testing.T, labels ...string) string {
	t.Helper()
	list := e.containers(t, labels...)
	if len(list) != 1 {
		t.Fatalf("want exactly 1 container labelled %s=%s %v, got %d", labelTest, e.tag, labels, len(list))
	}
	return list[0].ID
}

func (e *env) inspect(t *testing.T, id string) container.InspectResponse {
	t.Helper()
	res, err := e.cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return res.Container
}

// exists reports whether a container with this id exists in any state.
func (e *env) exists(t *testing.T, id string) bool {
	t.Helper()
	list, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("id", id),
	})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return len(list.Items) > 0
}

// volumes returns the names of the volumes mounted into a container.
func volumes(c container.InspectResponse) []string {
	var names []string
	for _, m := range c.Mounts {
		if m.Type == mount.TypeVolume {
			names = append(names, m.Name)
		}
	}
	return names
}

// volumeExists reports whether a volume with exactly this name exists.
func (e *env) volumeExists(t *testing.T, name string) bool {
	t.Helper()
	list, err := e.cli.VolumeList(context.Background(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("name", name),
	})
	if err != nil {
		t.Fatalf("list volumes: %v", err)
	}
	for _, v := range list.Items {
		if v.Name == name {
			return true
		}
	}
	return false
}

// connect opens a pgx connection to a started postgres sandbox.
func connect(t *testing.T, inst sandbox.Instance, srv engine.Server) *pgx.Conn {
	t.Helper()
	srv.Host, srv.Port = inst.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgres.ConnString(srv))
	if err != nil {
		t.Fatalf("connect to sandbox at %s:%d: %v", srv.Host, srv.Port, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartPostgres(t *testing.T) {
	e := newEnv(t, docker.WithoutSeeds()) // TestSeed starts from seeds
	ctx := context.Background()
	spec, srv := e.spec(t)
	spec.Labels = map[string]string{"io.backproof.target": "t"}
	inst := e.start(t, spec)

	host, port := inst.Addr()
	if host != "127.0.0.1" || port <= 0 {
		t.Fatalf("Addr() = %s:%d, want 127.0.0.1 and a port", host, port)
	}
	var one int
	if err := connect(t, inst, srv).QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}

	ref, imageID := inst.Image()
	img, err := e.cli.ImageInspect(ctx, e.image)
	if err != nil {
		t.Fatalf("inspect image: %v", err)
	}
	if ref != e.image || !strings.HasPrefix(imageID, "sha256:") || imageID != img.ID {
		t.Errorf("Image() = %q, %q; want %q, %q", ref, imageID, e.image, img.ID)
	}
	// The registry digest: none for an image built here, the first of the
	// image's repo digests for a pulled one.
	d, ok := inst.(sandbox.Digester)
	if wantDigest := strings.Join(img.RepoDigests[:min(1, len(img.RepoDigests))], ""); !ok || d.ImageDigest() != wantDigest {
		t.Errorf("ImageDigest() (implemented: %v) differs from the image's repo digest %q", ok, wantDigest)
	}

	id := e.the(t, docker.LabelOwner+"="+docker.Owner(), "io.backproof.target=t")
	c := e.inspect(t, id)
	if c.Image != img.ID {
		t.Errorf("container runs image %s, want %s", c.Image, img.ID)
	}

	// No network but loopback, nothing published, a read-only root.
	hc := c.HostConfig
	if _, ok := c.NetworkSettings.Networks["none"]; hc.NetworkMode != "none" || hc.PublishAllPorts || len(c.NetworkSettings.Networks) != 1 || !ok {
		t.Errorf("network mode %q, networks %v, publish all %v; want none, no ports", hc.NetworkMode, c.NetworkSettings.Networks, hc.PublishAllPorts)
	}
	if len(c.NetworkSettings.Ports) > 0 {
		t.Errorf("ports published: %v", c.NetworkSettings.Ports)
	}
	if !hc.ReadonlyRootfs {
		t.Error("root filesystem is writable")
	}

	// Unprivileged, no new privileges, only the capabilities an entrypoint needs.
	if hc.Privileged {
		t.Error("container is privileged")
	}
	if !slices.Contains(hc.SecurityOpt, "no-new-privileges") && !slices.Contains(hc.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("SecurityOpt = %q, want no-new-privileges", hc.SecurityOpt)
	}
	if !slices.Contains(hc.CapDrop, "ALL") {
		t.Errorf("CapDrop = %q, want ALL", hc.CapDrop)
	}
	allowed := []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
	for _, c := range hc.CapAdd {
		if !slices.Contains(allowed, strings.TrimPrefix(strings.ToUpper(c), "CAP_")) {
			t.Errorf("CapAdd has %s; allowed: %v", c, allowed)
		}
	}

	// Resource limits.
	if hc.Memory != 512<<20 || hc.MemorySwap != 512<<20 {
		t.Errorf("Memory = %d, MemorySwap = %d, want %d for both (no swap)", hc.Memory, hc.MemorySwap, 512<<20)
	}
	if hc.NanoCPUs != 1e9 {
		t.Errorf("NanoCPUs = %d, want 1e9", hc.NanoCPUs)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit <= 0 {
		t.Errorf("no pids limit")
	}

	// Labels a later sweep relies on.
	want := map[string]string{
		docker.LabelSandbox:   "1",
		docker.LabelOwner:     docker.Owner(),
		docker.LabelDeadline:  strconv.FormatInt(spec.Deadline.Unix(), 10),
		"io.backproof.target": "t",
		labelTest:             e.tag,
	}
	for k, v := range want {
		if got, ok := c.Config.Labels[k]; !ok || got != v {
			t.Errorf("label %s = %q (present: %v), want %q", k, got, ok, v)
		}
	}

	// The image declares VOLUME: Close removes that anonymous volume too.
	vols := volumes(c)
	if len(vols) == 0 {
		t.Fatalf("container has no volume mounted; mounts: %+v", c.Mounts)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if e.exists(t, id) {
		t.Errorf("container %s still exists after Close", id[:12])
	}
	for _, v := range vols {
		if e.volumeExists(t, v) {
			t.Errorf("volume %s still exists after Close", v)
		}
	}
	if err := inst.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec, _ := e.spec(t)
	inst := e.start(t, spec)
	if err := inst.Check(ctx); err != nil {
		t.Fatalf("Check on a running sandbox = %v, want nil", err)
	}
	if logs := inst.Logs(ctx); !strings.Contains(logs, postgres.ReadyLine) {
		t.Errorf("Logs() = %q, want the ready line in it", logs)
	}

	id := e.the(t)
	vols := volumes(e.inspect(t, id))
	if _, err := e.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("kill: %v", err)
	}
	waitExited(t, e.cli, id)
	err := inst.Check(ctx)
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("Check after the server was killed = %v, want an error wrapping sandbox.ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "memory") {
		t.Errorf("Check = %q: a kill from outside is not a memory problem", err)
	}
	t.Logf("Check: %v", err)

	if err := inst.Close(ctx); err != nil {
		t.Fatalf("Close after the server died: %v", err)
	}
	if e.exists(t, id) {
		t.Errorf("container %s still exists after Close", id[:12])
	}
	for _, v := range vols {
		if e.volumeExists(t, v) {
			t.Errorf("volume %s still exists after Close", v)
		}
	}
}

// waitExited waits until a container is no longer running.
func waitExited(t *testing.T, cli *testcontainers.DockerClient, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
	case err := <-res.Error:
		t.Fatalf("wait for container %s to exit: %v", id[:12], err)
	}
}

func TestCheckOutOfMemory(t *testing.T) {
	// A server process that outgrows the sandbox's memory limit is killed by
	// the kernel. Check must say so, so that verification reports a
	// resource problem and not a bad backup.
	t.Run("server process", func(t *testing.T) {
		// PostgreSQL's postmaster survives when the kernel kills one of its
		// backends, so the container keeps running.
		e := newEnv(t)
		ctx := context.Background()
		spec, srv := e.spec(t)
		spec.Memory = 256 << 20
		inst := e.start(t, spec)
		conn := connect(t, inst, srv)
		// repeat() allocates and fills its whole result: 600 MB.
		var n int
		err := conn.QueryRow(ctx, "SELECT length(repeat('x', 600000000))").Scan(&n)
		if err == nil {
			t.Fatalf("a 600 MB value in a 256 MiB sandbox: no error (length %d)", n)
		}
		t.Logf("query: %v", err)
		cerr := inst.Check(ctx)
		if !errors.Is(cerr, sandbox.ErrUnavailable) || !strings.Contains(cerr.Error(), "killed for exceeding its memory limit") {
			t.Fatalf("Check after a backend was killed for memory = %v, want an ErrUnavailable saying it was killed for exceeding its memory limit", cerr)
		}
		t.Logf("Check: %v", cerr)
	})

	t.Run("main process", func(t *testing.T) {
		// The container's main process itself outgrows the limit (a shell
		// reading 400 MB into a variable once the test says so): the
		// container exits, and the engine records why.
		e := newEnv(t)
		ctx := context.Background()
		spec := sandbox.Spec{
			Image: e.image,
			Cmd: []string{"bash", "-c", `echo ready
while [ ! -e /tmp/go ]; do sleep 0.05; done
x=$(head -c 400000000 /dev/zero | tr '\0' x)
echo survived ${#x}`},
			Port:     "5432/tcp",
			Ready:    "ready",
			Memory:   128 << 20,
			Deadline: time.Now().Add(5 * time.Minute),
		}
		inst := e.start(t, spec)
		if err := inst.Check(ctx); err != nil {
			t.Fatalf("Check before the allocation = %v", err)
		}
		id := e.the(t)
		execIn(t, e.cli, id, "touch", "/tmp/go")
		waitExited(t, e.cli, id)
		err := inst.Check(ctx)
		if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "killed for exceeding its memory limit") {
			t.Fatalf("Check after the main process was killed for memory = %v, want an ErrUnavailable saying it was killed for exceeding its memory limit; output: %s", err, inst.Logs(ctx))
		}
		t.Logf("Check: %v", err)
	})
}

// execIn runs a command in a running container and waits for it to end.
func execIn(t *testing.T, cli *testcontainers.DockerClient, id string, cmd ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	if _, err := cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true}); err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	for {
		st, err := cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec %v: %v", cmd, err)
		}
		if !st.Running {
			if st.ExitCode != 0 {
				t.Fatalf("exec %v: exit code %d", cmd, st.ExitCode)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSweep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	const deadPID = 4194303 // above any pid_max in use
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", deadPID)); err == nil {
		t.Fatalf("pid %d exists", deadPID)
	}
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	myPID := strconv.Itoa(os.Getpid())

	// What a crashed run leaves behind, and what a live one is still using.
	cases := []struct {
		name   string
		labels map[string]string
		keep   bool
	}{
		{"past deadline, live owner", map[string]string{docker.LabelOwner: docker.Owner(), docker.LabelDeadline: past}, false},
		{"owner process gone", map[string]string{docker.LabelOwner: host + "/" + strconv.Itoa(deadPID) + "/12345", docker.LabelDeadline: future}, false},
		{"owner pid reused", map[string]string{docker.LabelOwner: host + "/" + myPID + "/1", docker.LabelDeadline: future}, false},
		{"no owner label", map[string]string{docker.LabelDeadline: future}, false},
		{"other host, past deadline", map[string]string{docker.LabelOwner: "backproof-other-host/1/1", docker.LabelDeadline: past}, false},
		{"live owner, future deadline", map[string]string{docker.LabelOwner: docker.Owner(), docker.LabelDeadline: future}, true},
		{"other host, future deadline", map[string]string{docker.LabelOwner: "backproof-other-host/1/1", docker.LabelDeadline: future}, true},
		{"live owner, no deadline", map[string]string{docker.LabelOwner: docker.Owner()}, true},
	}

	// Round 1: New sweeps. Round 2: Sweep itself, on a provider made before
	// the leftovers existed.
	for _, round := range []string{"New", "Sweep"} {
		t.Run(round, func(t *testing.T) {
			ids := make([]string, len(cases))
			var vols [][]string
			for i, c := range cases {
				ids[i] = e.create(t, c.labels, i%2 == 0)
				vols = append(vols, e.leftoverVolumes(t, ids[i]))
			}
			switch round {
			case "New":
				d, err := docker.New(ctx, nil)
				if err != nil {
					t.Fatalf("docker.New: %v", err)
				}
				d.Close()
			case "Sweep":
				n, err := e.d.Sweep(ctx)
				if err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				t.Logf("Sweep removed %d containers", n)
			}
			for i, c := range cases {
				if !c.keep {
					e.awaitRemoval(t, ids[i])
				}
				if got := e.exists(t, ids[i]); got != c.keep {
					t.Errorf("%s: exists after the sweep = %v, want %v", c.name, got, c.keep)
				}
				if c.keep {
					continue
				}
				for _, v := range vols[i] {
					if e.volumeExists(t, v) {
						t.Errorf("%s: volume %s left behind", c.name, v)
					}
				}
			}
			e.removeAll(t)
		})
	}
}

// create makes a container of the sandbox image labelled like a sandbox
// with the given labels plus this test's, started or merely created, the
// way a crashed run could leave it. It is removed at the end of the test
// if it still exists.
func (e *env) create(t *testing.T, labels map[string]string, start bool) string {
	t.Helper()
	ctx := context.Background()
	l := map[string]string{docker.LabelSandbox: "1", labelTest: e.tag}
	for k, v := range labels {
		l[k] = v
	}
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  e.image,
			Labels: l,
			Env:    []string{"POSTGRES_PASSWORD=" + randHex(t, 8)},
		},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		_, _ = e.cli.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	if start {
		// Other test processes sweep too: a leftover may already be gone.
		if _, err := e.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil && !errdefs.IsNotFound(err) {
			t.Fatalf("start container: %v", err)
		}
	}
	return res.ID
}

// awaitRemoval waits briefly for a container to go: when another process's
// sweep was already removing it, this one's sweep leaves it to that one.
func (e *env) awaitRemoval(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.exists(t, id) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
}

// leftoverVolumes returns a leftover's volumes, or none when another test
// process's sweep has already removed it (with its volumes), as sweeps must.
func (e *env) leftoverVolumes(t *testing.T, id string) []string {
	t.Helper()
	res, err := e.cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return volumes(res.Container)
}

// removeAll removes every container of this test.
func (e *env) removeAll(t *testing.T) {
	t.Helper()
	for _, c := range e.containers(t) {
		if _, err := e.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsConflict(err) {
			t.Errorf("remove %s: %v", c.ID[:12], err)
		}
	}
}

func TestImageMissing(t *testing.T) {
	e := newEnv(t)
	spec, _ := e.spec(t)
	spec.Image = "backproof-test/no-such-image:1"
	begin := time.Now()
	inst, err := e.d.Start(context.Background(), spec)
	t.Logf("Start failed after %s: %v", time.Since(begin).Round(time.Millisecond), err)
	if err == nil {
		inst.Close(context.Background())
		t.Fatal("Start with a missing image succeeded")
	}
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), spec.Image) {
		t.Errorf("Start = %v, want an error wrapping sandbox.ErrUnavailable that names %s", err, spec.Image)
	}
}

func TestDockerUnavailable(t *testing.T) {
	// Not parallel (t.Setenv): DOCKER_HOST names an engine that is not
	// there, and the provider must not go looking for another one.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := docker.New(ctx, nil)
	if err == nil {
		d.Close()
		t.Fatal("docker.New succeeded with DOCKER_HOST naming a socket that does not exist")
	}
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("docker.New = %v, want an error wrapping sandbox.ErrUnavailable", err)
	}
	t.Logf("docker.New: %v", err)
}

func TestStartCancelled(t *testing.T) {
	e := newEnv(t)
	// Cancelled at different points before the server is ready: before and
	// while the container is created (the engine completes a create whose
	// caller went away, a few ms later: NoSandboxesLeft at the end of the
	// test sees those), while it starts, and while the server initialises.
	// From scratch, and (seed) while a seed of its own is prepared: the
	// server's first start, its stop, the build.
	ms := time.Millisecond
	type point struct {
		after time.Duration
		seed  bool
	}
	var points []point
	for _, after := range []time.Duration{0, 5 * ms, 10 * ms, 15 * ms, 20 * ms, 30 * ms, 50 * ms, 300 * ms, 800 * ms} {
		points = append(points, point{after, false})
	}
	for _, after := range []time.Duration{300 * ms, 1000 * ms, 2000 * ms} {
		points = append(points, point{after, true})
	}
	for _, p := range points {
		after := p.after
		name := after.String()
		if p.seed {
			name = "seed-" + name
		}
		t.Run(name, func(t *testing.T) {
			spec, _ := e.spec(t)
			spec.Seed = nil
			if p.seed {
				spec, _ = e.spec(t)
				spec.Env["BACKPROOF_TEST_SEED"] = e.tag + name
				e.removeSeeds(t, docker.SeedKey(e.imageOf(t, e.image).ID, spec))
			}
			cause := errors.New("test cancelled the start")
			ctx, cancel := context.WithCancelCause(context.Background())
			timer := time.AfterFunc(after, func() { cancel(cause) })
			defer timer.Stop()
			begin := time.Now()
			inst, err := e.d.Start(ctx, spec)
			elapsed := time.Since(begin)
			if err == nil {
				inst.Close(context.Background())
				t.Fatalf("Start cancelled after %s succeeded (took %s)", after, elapsed)
			}
			t.Logf("Start returned after %s: %v", elapsed.Round(time.Millisecond), err)
			if !errors.Is(err, cause) {
				t.Errorf("Start = %v, want an error wrapping the cancellation cause", err)
			}
			if left := testenv.OwnSandboxes(t); len(left) > 0 {
				t.Errorf("cancelled Start left containers behind: %v", left)
				e.removeAll(t)
			}
		})
	}
}

func TestStartNeverReady(t *testing.T) {
	// Without POSTGRES_PASSWORD the image's entrypoint refuses to initialise
	// and exits at once (from scratch: a seeded server skips initialising).
	e := newEnv(t)
	spec, _ := e.spec(t)
	delete(spec.Env, "POSTGRES_PASSWORD")
	spec.Seed = nil
	begin := time.Now()
	inst, err := e.d.Start(context.Background(), spec)
	t.Logf("Start returned after %s: %v", time.Since(begin).Round(time.Millisecond), err)
	if err == nil {
		inst.Close(context.Background())
		t.Fatal("Start succeeded without a password")
	}
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("Start = %v, want an error wrapping sandbox.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "superuser password") {
		t.Errorf("Start = %v, want the container's output (superuser password is not specified) in it", err)
	}
	if left := e.containers(t); len(left) > 0 {
		t.Errorf("%d containers left behind", len(left))
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
