package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/crypt"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/internal/redact"
	"github.com/backproof/backproof/restore"
	"github.com/backproof/backproof/verify"
)

// maxHold bounds how long restore --sandbox keeps a sandbox without --keep.
const maxHold = 24 * time.Hour

type restoreOpts struct {
	backupID, from, to string
	sandbox, force     bool
	dryRun, asJSON     bool
	keep               time.Duration
}

// restoreResult is restore's JSON document.
type restoreResult struct {
	Target       string         `json:"target"`
	BackupID     string         `json:"backup_id"`
	Destination  string         `json:"destination"`
	Skipped      []string       `json:"skipped,omitempty"` // copies found corrupt
	Into         string         `json:"into,omitempty"`
	DryRun       bool           `json:"dry_run,omitempty"`
	Size         int64          `json:"size"`
	Tables       int            `json:"tables"`
	Rows         int64          `json:"rows"`
	Schema       string         `json:"schema_version,omitempty"` // e.g. "flyway 42"
	Seconds      float64        `json:"restore_duration_seconds,omitempty"`
	Verification *verify.Record `json:"verification,omitempty"`
	words        engine.Words
}

func (e *env) restoreCommand() *cobra.Command {
	var o restoreOpts
	cmd := &cobra.Command{
		Use:   "restore TARGET (--to DSN | --sandbox)",
		Short: "Restore a backup into a database, or into a throwaway container to inspect",
		Long: `Restore the latest committed backup of TARGET (or --backup ID) from the named
destination (--from) or the first that holds it intact; size and SHA-256 are
checked before the target is touched, and a corrupt copy is skipped for an
intact one on another destination unless --from pins it.

--to DSN restores into that database. PostgreSQL: in one transaction, so a
failed restore leaves it as it was; put the password in PGPASSWORD or
~/.pgpass rather than in the DSN. MongoDB: what a failed restore created is
dropped again. Redis: key by key with RESTORE, expiries kept. A database that
already holds objects (Redis: keys) is refused unless --force, which replaces
the objects the dump contains and leaves the others.

--sandbox restores into a throwaway container, runs the target's checks,
prints a connection string and keeps the container until Ctrl-C or --keep.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.backupID == "latest" {
				o.backupID = ""
			}
			if (o.to == "") == !o.sandbox {
				return usagef("pass exactly one of --to DSN or --sandbox")
			}
			cfg, targets, err := e.loadTargets(args, o.from)
			if err != nil {
				return err
			}
			t := targets[0]
			if o.from != "" && !slices.Contains(t.Destinations, o.from) {
				return usagef("target %s does not use destination %s", t.Name, o.from)
			}
			if o.to != "" { // the DSN's password is a secret like the config's
				e.redactor = redact.New(append(secrets(cfg), dsnSecrets(t.Engine, o.to)...)...)
				e.log = newLogger(e.stderr, cfg.Log, e.redactor)
			}
			names := t.Destinations
			if o.from != "" {
				names = []string{o.from}
			}
			var sources []restore.Source
			for _, d := range openDestinations(e.ctx, cfg, names) {
				sources = append(sources, restore.Source{Name: d.Name, Store: d.Destination})
			}
			copies, err := restore.Find(e.ctx, sources, t.Name, o.backupID)
			if err != nil {
				if restore.IsBad(err) {
					return fmt.Errorf("%w: %w", errBadBackup, err)
				}
				return err
			}
			ids, err := identities(cfg)
			if err != nil {
				return err
			}
			if err := restore.CheckKeys(copies[0].Manifest, ids); err != nil {
				return fmt.Errorf("%w; nothing was restored, the target was not touched", err)
			}
			eng, err := newEngine(t, e.log.With("target", t.Name))
			if err != nil {
				return err
			}
			res := &restoreResult{Target: t.Name, BackupID: copies[0].Manifest.ID, Destination: copies[0].Source.Name, DryRun: o.dryRun, words: words(t.Engine)}
			res.Size = copies[0].Manifest.StoredSize()
			res.Schema = continuity.SchemaVersion(&copies[0].Manifest.Source)
			for _, tb := range copies[0].Manifest.Source.Tables {
				res.Tables++
				res.Rows += tb.Rows
			}
			switch {
			case o.dryRun:
				res.Into = "sandbox"
				if o.to != "" {
					res.Into = eng.Describe(o.to)
				}
			case o.sandbox:
				err = e.restoreSandbox(cfg, t, eng, copies[0], o, res)
			default:
				err = e.restoreTo(eng, copies, ids, o, res)
			}
			if o.asJSON {
				if jerr := e.writeJSON(res); jerr != nil {
					return errors.Join(err, jerr)
				}
			} else {
				e.printRestore(res, o)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.backupID, "backup", "", "backup id, or latest (default)")
	f.StringVar(&o.from, "from", "", "read from this destination only")
	f.StringVar(&o.to, "to", "", "restore into the database at this DSN")
	f.BoolVar(&o.sandbox, "sandbox", false, "restore into a throwaway container and keep it for inspection")
	f.BoolVar(&o.force, "force", false, "--to: restore into a database that is not empty, replacing the objects the dump contains")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be restored and change nothing")
	f.DurationVar(&o.keep, "keep", 0, "--sandbox: remove the container after this long (default: at Ctrl-C)")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

// restoreTo restores into the database at o.to. The backup is spooled and
// checked while the target is checked; only checked bytes reach the target.
func (e *env) restoreTo(eng engine.Engine, copies []restore.Copy, ids *crypt.Identities, o restoreOpts, res *restoreResult) error {
	dir, err := os.MkdirTemp("", "backproof-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancelCause(e.ctx)
	progress := e.progress(o.asJSON)
	// An engine that restores from a stream gets the stored bytes spooled,
	// then decompressed into it as it restores; others get the
	// decompressed dump in a file.
	sr, stream := eng.(engine.StreamRestorer)
	sp := e.startSpool(ctx, copies, ids, dir, stream, progress)
	defer func() {
		cancel(nil)
		sp.wait()
	}()
	if err := engine.CheckEmpty(ctx, eng, o.to, o.force); err != nil {
		cancel(err)
		return err
	}
	var (
		bar      io.WriteCloser
		start    time.Time
		spoolErr error // the target was not touched
	)
	ready := func() error {
		if spoolErr = sp.result(res); spoolErr != nil {
			return spoolErr
		}
		if progress != nil {
			bar = progress("restore into "+eng.Describe(o.to), sp.size)
		}
		start = time.Now()
		return nil
	}
	opts := engine.RestoreOptions{Jobs: 1, Clean: o.force}
	if stream {
		info := dumpInfo(copies[0].Manifest)
		var r *errReader
		open := func() (io.Reader, error) {
			if err := ready(); err != nil {
				return nil, err
			}
			if !sameDumpInfo(dumpInfo(sp.used.Manifest), info) {
				spoolErr = fmt.Errorf("the copies of backup %s on %s and %s record different server or tool versions; the target was not touched", res.BackupID, copies[0].Source.Name, sp.used.Source.Name)
				return nil, spoolErr
			}
			rc, err := sp.stored.Open(bar)
			if err != nil {
				spoolErr = fmt.Errorf("backup %s could not be opened; the target was not touched: %w", res.BackupID, err)
				if restore.IsBad(err) {
					spoolErr = fmt.Errorf("%w: %w", errBadBackup, spoolErr)
				}
				return nil, spoolErr
			}
			sp.reader = rc
			r = &errReader{r: rc}
			return r, nil
		}
		err = sr.RestoreStream(ctx, o.to, open, info, opts)
		// A stream that stops decoding is the backup's fault, whatever the
		// restore made of its end.
		if r != nil && r.err != nil && err != nil {
			err = fmt.Errorf("%w (%w)", r.err, err)
		}
	} else if err = ready(); err == nil {
		if bar != nil {
			opts.Progress = bar
			defer bar.Close()
		}
		err = eng.RestoreInto(ctx, o.to, sp.path, dumpInfo(sp.used.Manifest), opts)
	}
	if stream && bar != nil {
		bar.Close()
	}
	if spoolErr != nil {
		return spoolErr
	}
	if err != nil {
		cancel(err)
		err = fmt.Errorf("restore into %s failed: %w", eng.Describe(o.to), err)
		if errors.Is(err, engine.ErrCorrupt) || restore.IsBad(err) {
			return fmt.Errorf("%w: %w", errBadBackup, err)
		}
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	res.Into = eng.Describe(o.to)
	return nil
}

func dumpInfo(m *catalog.Manifest) *engine.DumpInfo {
	return &engine.DumpInfo{ServerVersion: m.ServerVersion, Tools: m.Tools, Source: m.Source}
}

// sameDumpInfo says whether checks of the target and the tools made for a
// backup's info a hold for info b.
func sameDumpInfo(a, b *engine.DumpInfo) bool {
	return a.ServerVersion == b.ServerVersion && maps.Equal(a.Tools, b.Tools)
}

// spoolRun is a restore's download of the first intact copy into its spool,
// running while the target is checked. Its holds keep prune off the backup
// until the bytes are spooled.
type spoolRun struct {
	copies   []restore.Copy
	done     chan struct{}
	released chan struct{} // the holds
	err      error
	used     restore.Copy
	stored   *restore.Spooled // a stream restore's stored bytes
	path     string           // or the decompressed dump
	size     int64
	reader   io.Closer // of stored, once opened
}

func (e *env) startSpool(ctx context.Context, copies []restore.Copy, ids *crypt.Identities, dir string, stream bool, progress restore.Progress) *spoolRun {
	sp := &spoolRun{copies: copies, done: make(chan struct{}), released: make(chan struct{})}
	go func() {
		defer close(sp.done)
		release := e.holdCopies(ctx, copies)
		// Once spooled, the backup may go: released while the restore runs.
		defer func() { go func() { release(); close(sp.released) }() }()
		if stream {
			sp.used, sp.stored, sp.err = restore.SpoolStoredFirstIntact(ctx, e.log, copies, ids, dir, progress)
			if sp.err == nil {
				sp.size = sp.stored.Size()
			}
			return
		}
		sp.used, sp.path, sp.err = restore.SpoolFirstIntact(ctx, e.log, copies, ids, dir, progress)
		if sp.err == nil {
			var fi os.FileInfo
			if fi, sp.err = os.Stat(sp.path); sp.err == nil {
				sp.size = fi.Size()
			}
		}
	}()
	return sp
}

// wait waits until the spool has ended, its holds are released and its
// reader is closed.
func (sp *spoolRun) wait() {
	<-sp.done
	<-sp.released
	if sp.reader != nil {
		sp.reader.Close()
	}
}

// result waits for the spool and records in res the copy used and those
// skipped before it; its error names the backup and says the target was not
// touched.
func (sp *spoolRun) result(res *restoreResult) error {
	<-sp.done
	for _, c := range sp.copies {
		if c.Source.Name == sp.used.Source.Name {
			break
		}
		res.Skipped = append(res.Skipped, c.Source.Name)
	}
	switch {
	case sp.err == nil:
		res.Destination = sp.used.Source.Name
		return nil
	case restore.IsBad(sp.err):
		return fmt.Errorf("%w: no intact copy of backup %s; the target was not touched: %w", errBadBackup, res.BackupID, sp.err)
	}
	return fmt.Errorf("backup %s could not be read; the target was not touched: %w", res.BackupID, sp.err)
}

// errReader remembers the first error other than EOF that r returned.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// restoreSandbox restores into a throwaway container, runs the checks and
// holds the container for inspection.
func (e *env) restoreSandbox(cfg *config.Config, t *config.Target, eng engine.Engine, c restore.Copy, o restoreOpts, res *restoreResult) error {
	hold := o.keep
	if hold <= 0 {
		hold = maxHold
	}
	v, err := e.newVerifier(cfg)
	if err != nil {
		return err
	}
	defer v.close()
	v.Timeout = cfg.Sandbox.Timeout + hold
	req := verify.Request{
		Target: t.Name, Engine: t.Engine, Words: words(t.Engine), Prover: eng,
		Destination: c.Source.Name, Store: c.Source.Store, BackupID: c.Manifest.ID,
		NoRecord: true,
		Hold: func(ctx context.Context, srv engine.Server) {
			fmt.Fprintf(e.stdout, "sandbox ready: %s\n", eng.ConnString(srv))
			fmt.Fprintf(e.stderr, "only processes of user %s can connect to it\n", userName())
			msg := "press Ctrl-C to remove it"
			if o.keep > 0 {
				msg = fmt.Sprintf("it is removed in %s or at Ctrl-C", o.keep)
			}
			fmt.Fprintln(e.stderr, msg)
			select {
			case <-ctx.Done():
			case <-time.After(hold):
			}
		},
	}
	if t.Verify != nil {
		req.Checks, req.Integrity, req.Tolerance = t.Verify.Checks, t.Verify.Amcheck, t.Verify.KeyTolerance
	}
	rec := v.Run(e.ctx, req)
	res.Verification = rec
	res.Seconds = rec.RestoreSeconds
	res.Into = "sandbox"
	if e.ctx.Err() != nil && rec.RestoreSeconds > 0 {
		return nil // Ctrl-C ended the inspection, as intended
	}
	return verdict([]*verify.Record{rec})
}

// userName is this process's user, as a name when it has one.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

func (e *env) printRestore(r *restoreResult, o restoreOpts) {
	if r.DryRun {
		schema := ""
		if r.Schema != "" {
			schema = ", schema " + r.Schema
		}
		fmt.Fprintf(e.stdout, "would restore %s backup %s from %s (%s, %d %s, %d %s%s) into %s\n",
			r.Target, r.BackupID, r.Destination, formatSize(r.Size), r.Tables, r.words.Containers, r.Rows, r.words.Items, schema, r.Into)
		if o.force {
			fmt.Fprintln(e.stdout, "  --force: objects the backup contains would be replaced")
		}
		return
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(e.stdout, "copy on %s is corrupt or incomplete: skipped\n", s)
	}
	if r.Verification != nil {
		e.printVerifications([]*verify.Record{r.Verification})
		return
	}
	if r.Seconds > 0 {
		fmt.Fprintf(e.stdout, "restored %s backup %s from %s into %s in %s (%d %s, %d %s)\n",
			r.Target, r.BackupID, r.Destination, r.Into, seconds(r.Seconds), r.Tables, r.words.Containers, r.Rows, r.words.Items)
	}
}
