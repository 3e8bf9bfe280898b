package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

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

// restoreTo restores into the database at o.to.
func (e *env) restoreTo(eng engine.Engine, copies []restore.Copy, ids *crypt.Identities, o restoreOpts, res *restoreResult) error {
	if err := engine.CheckEmpty(e.ctx, eng, o.to, o.force); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "backproof-restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	progress := e.progress(o.asJSON)
	defer e.holdCopies(copies)()
	// An engine that restores from a stream gets the stored bytes spooled
	// and checked first, then decompressed into it as it restores; others
	// get the decompressed dump in a file.
	sr, stream := eng.(engine.StreamRestorer)
	var used restore.Copy
	var path string
	var sp *restore.Spooled
	if stream {
		used, sp, err = restore.SpoolStoredFirstIntact(e.ctx, e.log, copies, ids, dir, progress)
	} else {
		used, path, err = restore.SpoolFirstIntact(e.ctx, e.log, copies, ids, dir, progress)
	}
	for _, c := range copies {
		if c.Source.Name == used.Source.Name {
			break
		}
		res.Skipped = append(res.Skipped, c.Source.Name)
	}
	if err != nil {
		if restore.IsBad(err) {
			return fmt.Errorf("%w: no intact copy of backup %s; the target was not touched: %w", errBadBackup, res.BackupID, err)
		}
		return fmt.Errorf("backup %s could not be read; the target was not touched: %w", res.BackupID, err)
	}
	res.Destination = used.Source.Name
	m := used.Manifest
	info := &engine.DumpInfo{ServerVersion: m.ServerVersion, Tools: m.Tools, Source: m.Source}
	opts := engine.RestoreOptions{Jobs: 1, Clean: o.force}
	var bar io.WriteCloser
	if progress != nil {
		var size int64
		if stream {
			size = sp.Size()
		} else {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			size = fi.Size()
		}
		bar = progress("restore into "+eng.Describe(o.to), size)
		defer bar.Close()
	}
	start := time.Now()
	if stream {
		err = restoreStream(e.ctx, sr, o.to, sp, bar, info, opts)
	} else {
		if bar != nil {
			opts.Progress = bar
		}
		err = eng.RestoreInto(e.ctx, o.to, path, info, opts)
	}
	if err != nil {
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

// restoreStream decompresses the spooled stored bytes into sr. A stream
// that stops decoding is the backup's fault, whatever the restore made of
// its end.
func restoreStream(ctx context.Context, sr engine.StreamRestorer, dsn string, sp *restore.Spooled, progress io.Writer, info *engine.DumpInfo, opts engine.RestoreOptions) error {
	rc, err := sp.Open(progress)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := &errReader{r: rc}
	err = sr.RestoreStream(ctx, dsn, r, info, opts)
	if r.err != nil && err != nil {
		return fmt.Errorf("%w (%w)", r.err, err)
	}
	return err
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
