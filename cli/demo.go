package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/daemon"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/engine/postgres"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/internal/sample"
	"github.com/backproof/backproof/metrics"
	"github.com/backproof/backproof/sandbox"
	"github.com/backproof/backproof/sandbox/docker"
	"github.com/backproof/backproof/verify"
)

// demoOfflineImage is the postgres image scripts/sandbox-images.sh builds
// from Debian packages; the demo prefers it, as it needs no registry.
const demoOfflineImage = "backproof-sandbox/postgres:15"

// demoConfigText is the config the demo runs on. The source's DSN comes from
// ORDERS_DSN, which the demo sets for itself only; the default without a
// password keeps the written file usable for list, verify and restore
// --sandbox, which never connect to the source.
const demoConfigText = `# Written by backproof demo. Backups are in %[1]s.
listen: %[2]s
sandbox:
  images: {postgres: %[3]q}
destinations:
  local: {type: local, path: %[1]s}
targets:
  orders:
    engine: postgres
    dsn: ${ORDERS_DSN:-%[4]s}
    destinations: [local]
    verify:
      checks:
        - name: orders-present
          query: SELECT count(*) FROM orders
          expect: "> 0"
        - name: orders-fresh
          query: SELECT max(created_at) FROM orders
          max_age: 26h
        - name: items-have-orders
          query: SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL
          expect: "= 0"
`

type demoOptions struct {
	image   string
	dir     string
	listen  string
	serve   time.Duration
	orders  int
	verbose bool
}

func (e *env) demoCommand() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Back up and verify a sample database end to end (in Docker containers)",
		Long: `Start a throwaway PostgreSQL container holding a sample order-service
database, back it up to a local folder, verify the backup in a second
throwaway container, then serve /metrics and the status page for a while.
Everything is removed at the end (the folder too, unless --dir names it).

The image (--image, or $BACKPROOF_DEMO_IMAGE) serves as source and sandbox.
By default: the offline image ` + demoOfflineImage + ` when it is
there, else postgres:N for the newest pg_dump N installed here, pulled if
missing. The backup runs pg_dump on this machine.

On a fresh machine, run as root on Debian from a backproof checkout, the demo
provisions what it lacks with the scripts the tests use: a Docker engine
(scripts/dockerd.sh) when none answers at the default socket, and the
offline image (scripts/sandbox-images.sh) when postgres:N cannot be pulled.
Elsewhere it says what to run.
Exit 0: the backup passed verification; 3: it proved bad; 1: the demo could
not run (no Docker, no pg_dump, no image).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.serve < 0 {
				return usagef("--serve must not be negative")
			}
			if o.orders < 1 {
				return usagef("--orders must be at least 1")
			}
			if o.image == "" {
				o.image = e.getenv("BACKPROOF_DEMO_IMAGE")
			}
			return e.runDemo(o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "PostgreSQL image for the source and the sandbox (default $BACKPROOF_DEMO_IMAGE, then "+demoOfflineImage+" if built, else postgres:<pg_dump major>)")
	f.StringVar(&o.dir, "dir", "", "keep the backups and the demo's config in this folder (default: a temporary folder, removed)")
	f.StringVar(&o.listen, "listen", config.DefaultListen, "address to serve /metrics and the status page on")
	f.DurationVar(&o.serve, "serve", 10*time.Second, "how long to serve /metrics and the status page; 0: until Ctrl-C")
	f.IntVar(&o.orders, "orders", 150_000, "orders in the sample database (about 2.5 rows each over all tables)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log what happens (info level) on stderr")
	return cmd
}

func (e *env) runDemo(o demoOptions) error {
	began := time.Now()
	e.redactor = redact.New()
	level := "warn"
	if o.verbose {
		level = "info"
	}
	e.log = e.newLogger(config.Log{Level: level})
	say := func(step, format string, args ...any) {
		fmt.Fprintf(e.stdout, "%-8s %s\n", step, fmt.Sprintf(format, args...))
	}

	ctx := e.ctx
	setup := e.newSetup(say)
	d, err := setup.dockerEngine(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	image, why, err := setup.image(ctx, d, o.image)
	if err != nil {
		return err
	}
	say("image", "%s (%s)", image, why)

	// Listen first: a port in use should not cost a whole demo run.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("serve the status page: %w (choose another address with --listen)", err)
	}
	defer ln.Close()

	dir, removeDir, err := demoDir(o.dir)
	if err != nil {
		return err
	}
	defer removeDir()
	backups := filepath.Join(dir, "backups")
	if err := os.MkdirAll(backups, 0o700); err != nil {
		return err
	}

	start := time.Now()
	src, srv, err := e.demoSource(d, image)
	if err != nil {
		return err
	}
	closeSource := sync.OnceFunc(func() { e.closeSandbox(src, "source") })
	defer closeSource()
	dsn := postgres.ConnString(srv)
	say("source", "PostgreSQL container ready in %s at %s:%d", since(start), srv.Host, srv.Port)

	start = time.Now()
	if err := sample.Seed(ctx, dsn, o.orders); err != nil {
		return fmt.Errorf("seed the sample database: %w", err)
	}
	counts, err := sample.Counts(ctx, dsn)
	if err != nil {
		return fmt.Errorf("count the sample database: %w", err)
	}
	var rows int64
	for _, n := range counts {
		rows += n
	}
	say("seed", "order-service database: %d orders, %d order items, %d rows in %d tables, in %s",
		counts["public.orders"], counts["public.order_items"], rows, len(counts), since(start))

	cfg, cfgPath, err := e.demoConfig(dir, backups, ln.Addr().String(), image, srv)
	if err != nil {
		return err
	}
	t := cfg.Targets["orders"]

	eng, err := newEngine(t, e.log.With("target", t.Name))
	if err != nil {
		return err
	}
	runner := &backup.Runner{Log: e.log, Version: e.build.Version}
	res, err := runner.Run(ctx, backup.Target{
		Name:         t.Name,
		EngineName:   t.Engine,
		Engine:       eng,
		Destinations: openDestinations(ctx, cfg, t.Destinations),
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	closeSource() // the backup is all that is needed from here on
	backupDir := filepath.Join(backups, t.Name, res.ID)
	say("backup", "%s committed: %s in %s, SHA-256 %s…", res.ID, formatSize(res.Size),
		res.End.Sub(res.Start).Round(time.Millisecond), res.SHA256[:min(12, len(res.SHA256))])
	for _, a := range res.Manifest.Artifacts {
		say("", "%s", filepath.Join(backupDir, a.Name))
	}

	say("verify", "restoring into a second throwaway container and running the checks")
	v, err := e.newVerifier(cfg)
	if err != nil {
		return err
	}
	dest := openDestinations(ctx, cfg, t.Destinations)[0]
	rec := v.run(ctx, t, dest.Name, dest.Destination, res.ID)
	v.close()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.printVerifications([]*verify.Record{rec})
	if rec.Stored != "" {
		say("", "record %s", filepath.Join(backupDir, rec.Stored))
	}
	verdictErr := verdict([]*verify.Record{rec})

	if err := e.demoServe(ln, cfg, o, say); err != nil {
		return errors.Join(err, verdictErr)
	}
	if o.dir != "" {
		say("kept", "%s; try: backproof list -c %s", dir, cfgPath)
	}
	removed := "containers removed"
	if o.dir == "" {
		removed += ", " + dir + " removed"
	}
	say("done", "in %s; %s", since(began), removed)
	return verdictErr
}

// demoConfig writes the demo's config into dir and loads it like any
// other. The file holds no password: ORDERS_DSN, set for this load only,
// carries it.
func (e *env) demoConfig(dir, backups, listen, image string, srv engine.Server) (*config.Config, string, error) {
	path := filepath.Join(dir, "backproof.yaml")
	noPassword := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", srv.User, net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), srv.Database)
	text := fmt.Sprintf(demoConfigText, backups, listen, image, noPassword)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return nil, "", err
	}
	cfg, err := config.Parse([]byte(text), path, func(k string) (string, bool) {
		if k == "ORDERS_DSN" {
			return postgres.ConnString(srv), true
		}
		return "", false
	})
	if err != nil {
		return nil, "", err
	}
	e.redactor.Add(cfg.Secrets()...)
	return cfg, path, nil
}

// demoSource starts the source database: a server like the sandboxes, with
// their labels, so the container of a killed demo is swept by the next run.
func (e *env) demoSource(d *docker.Docker, image string) (sandbox.Instance, engine.Server, error) {
	spec, srv := postgres.New("").Sandbox(image, rand.Text(), nil)
	e.redactor.Add(srv.Password)
	srv.Database = "orders"
	spec.Env["POSTGRES_DB"] = srv.Database
	spec.Seed = nil // started once: a seed would only cost its building
	spec.Labels = map[string]string{"io.backproof.demo": "source"}
	spec.Deadline = time.Now().Add(time.Hour)
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Minute)
	defer cancel()
	src, err := d.Start(ctx, spec)
	if err != nil {
		return nil, srv, demoImageHint(fmt.Errorf("start the source database: %w", err), image)
	}
	srv.Host, srv.Port = src.Addr()
	return src, srv, nil
}

func (e *env) closeSandbox(inst sandbox.Instance, what string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
	defer cancel()
	if err := inst.Close(ctx); err != nil {
		e.log.Warn("removing the "+what+" container failed", "err", err)
	}
}

// demoServe serves the daemon's endpoints on the demo's catalog: its target
// has no schedules, so nothing runs but the catalog scan.
func (e *env) demoServe(ln net.Listener, cfg *config.Config, o demoOptions, say func(string, string, ...any)) error {
	base := "http://" + ln.Addr().String()
	until := "until Ctrl-C"
	if o.serve > 0 {
		until = "for " + o.serve.String() + " (--serve; 0: until Ctrl-C)"
	}
	ctx := e.ctx
	if o.serve > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.serve)
		defer cancel()
	}
	reg := prometheus.NewRegistry()
	d := &daemon.Daemon{
		Jobs:        &daemonJobs{e: e},
		Log:         e.log,
		Registry:    reg,
		Metrics:     metrics.New(reg, e.build.Version),
		Version:     e.build.Version,
		StopTimeout: daemonStopTimeout,
		Redact:      e.redactor.String,
		Reload:      func() (*config.Config, error) { return cfg, nil },
		// Said once the endpoints show the catalog: a page opened at once
		// would otherwise show a daemon still scanning.
		OnReady: func() { say("serve", "%s/ status page, %s/metrics, %s/status %s", base, base, base, until) },
	}
	return d.Serve(ctx, ln, cfg, nil)
}

// demoImageHint adds what to do about an image that could not be had.
func demoImageHint(err error, image string) error {
	if errors.Is(err, sandbox.ErrUnavailable) && strings.Contains(err.Error(), "could not be pulled") {
		return fmt.Errorf("%w\nno registry? build the offline image with `sudo scripts/sandbox-images.sh postgres`; the demo then uses %s (or pass --image)", err, demoOfflineImage)
	}
	return err
}

// demoDir returns the folder for the demo's backups and config and how to
// clean up: a named folder is kept, a temporary one removed.
func demoDir(named string) (string, func(), error) {
	if named != "" {
		abs, err := filepath.Abs(named)
		if err != nil {
			return "", nil, err
		}
		return abs, func() {}, os.MkdirAll(abs, 0o700)
	}
	dir, err := os.MkdirTemp("", "backproof-demo-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
