package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/continuity"
	"github.com/backproof/backproof/destination"
	"github.com/backproof/backproof/engine"
	"github.com/backproof/backproof/sign"
	"github.com/backproof/backproof/verify"
)

type listEntry struct {
	Target      string    `json:"target"`
	Destination string    `json:"destination"`
	ID          string    `json:"id"`
	State       string    `json:"state"` // committed | invalid | untrusted
	Created     time.Time `json:"created"`
	End         time.Time `json:"end,omitzero"`
	Size        int64     `json:"size"`
	Engine      string    `json:"engine,omitempty"`
	// Encryption names the recipients a backup is encrypted to.
	Encryption *catalog.Encryption `json:"encryption,omitempty"`
	Problem    string              `json:"problem,omitempty"`
	// Schema is the migration version the backup holds ("flyway 42");
	// Migrations has every migration table found.
	Schema     string             `json:"schema_version,omitempty"`
	Migrations []engine.Migration `json:"migrations,omitempty"`
	// Accepted: a person accepted this backup as the continuity baseline.
	Accepted *catalog.Acceptance `json:"accepted,omitempty"`
	// Verification is the backup's last verification on this destination;
	// nil: never verified there.
	Verification *lastVerification `json:"verification"`
}

type lastVerification struct {
	Outcome verify.Outcome `json:"outcome"`
	At      time.Time      `json:"at"`
	Reason  string         `json:"reason,omitempty"`
	Record  string         `json:"record"`
}

type listFailure struct {
	Target      string `json:"target"`
	Destination string `json:"destination"`
	Error       string `json:"error"`
}

func (e *env) listCommand() *cobra.Command {
	var asJSON bool
	var only string
	cmd := &cobra.Command{
		Use:   "list [TARGET...]",
		Short: "List backups per target and destination",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, targets, err := e.loadTargets(args, only)
			if err != nil {
				return err
			}
			entries := []listEntry{}
			failures := []listFailure{}
			caches := listCaches{}
			defer caches.save()
			for _, t := range targets {
				for _, d := range openDestinations(e.ctx, cfg, t.Destinations) {
					if only != "" && d.Name != only {
						continue
					}
					cache := caches.get(cfg, d.Name)
					l, err := catalog.Read(e.ctx, d, t.Name, cache)
					if err != nil {
						failures = append(failures, listFailure{t.Name, d.Name, e.redactor.String(err.Error())})
						continue
					}
					// Records and acceptances: read in parallel, bounded.
					les := make([]listEntry, len(l.Backups))
					var wg sync.WaitGroup
					sem := make(chan struct{}, catalog.Parallel)
					for i, b := range l.Backups {
						wg.Add(1)
						sem <- struct{}{}
						go func() {
							defer func() { <-sem; wg.Done() }()
							le := newListEntry(t.Name, d.Name, b)
							le.Verification = e.lastVerification(d, t.Name, b, cache)
							if a, err := catalog.ReadAcceptance(e.ctx, d, t.Name, b); err != nil {
								le.Problem = e.redactor.String("unreadable acceptance: " + err.Error())
							} else {
								le.Accepted = a
							}
							les[i] = le
						}()
					}
					wg.Wait()
					entries = append(entries, les...)
				}
			}
			slices.SortStableFunc(entries, func(a, b listEntry) int {
				if a.Target != b.Target {
					return compare(a.Target, b.Target)
				}
				return compare(b.ID, a.ID) // newest first
			})
			if asJSON {
				if err := e.writeJSON(struct {
					Backups []listEntry   `json:"backups"`
					Errors  []listFailure `json:"errors"`
				}{entries, failures}); err != nil {
					return err
				}
			} else {
				e.printList(entries)
			}
			var errs []error
			for _, f := range failures {
				errs = append(errs, fmt.Errorf("list %s on %s: %s", f.Target, f.Destination, f.Error))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	cmd.Flags().StringVar(&only, "destination", "", "only this destination")
	return cmd
}

func newListEntry(target, dest string, b catalog.Backup) listEntry {
	le := listEntry{Target: target, Destination: dest, ID: b.ID, State: "committed"}
	le.Created, _ = catalog.IDTime(b.ID)
	if b.Summary == nil {
		le.State, le.Problem = "invalid", b.Invalid
		if errors.Is(b.Err, sign.ErrNotAuthentic) {
			le.State = "untrusted" // for a person to look at; never used
		}
		return le
	}
	s := b.Summary
	le.Created, le.End = s.Start, s.End
	le.Size = s.Size
	le.Engine = s.Engine
	le.Encryption = s.Encryption
	le.Migrations = s.Migrations
	le.Schema = continuity.SchemaVersion(&engine.SourceStats{Migrations: s.Migrations})
	return le
}

// lastVerification reads a backup's newest verification record. One that
// cannot be read is reported as such rather than hiding the backup.
func (e *env) lastVerification(d destination.Destination, target string, b catalog.Backup, cache *catalog.Cache) *lastVerification {
	if len(b.Records) == 0 {
		return nil
	}
	name := b.Records[len(b.Records)-1]
	rec, err := catalog.ReadRecordCached[verify.Record](e.ctx, cache, d, target, b.ID, name)
	if err != nil {
		return &lastVerification{Outcome: verify.Error, Reason: e.redactor.String("unreadable record: " + err.Error()), Record: name}
	}
	return &lastVerification{Outcome: rec.Outcome, At: rec.Ended, Reason: rec.Reason, Record: name}
}

func (e *env) printList(entries []listEntry) {
	if len(entries) == 0 {
		fmt.Fprintln(e.stdout, "no backups")
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tDESTINATION\tBACKUP ID\tCREATED (UTC)\tSIZE\tSCHEMA\tSTATE\tVERIFIED")
	for _, le := range entries {
		state := le.State
		if le.Problem != "" {
			state += ": " + le.Problem
		}
		verified := "never"
		if v := le.Verification; v != nil {
			verified = string(v.Outcome)
			if !v.At.IsZero() {
				verified += " " + v.At.UTC().Format("2006-01-02 15:04")
			}
			if v.Outcome != verify.Pass && v.Reason != "" {
				verified += ": " + v.Reason
			}
		}
		if a := le.Accepted; a != nil {
			verified += "; accepted by " + a.By + " " + a.At.UTC().Format("2006-01-02 15:04") + reasonSuffix(a.Reason)
		}
		schema := le.Schema
		if schema == "" {
			schema = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", le.Target, le.Destination, le.ID,
			le.Created.UTC().Format("2006-01-02 15:04:05"), formatSize(le.Size), schema, state, verified)
	}
	tw.Flush()
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// listCaches keeps what list read of each destination's manifests and
// records on disk, so that the next list reads only what changed: a
// manifest is read again when its listed size, time or ETag differ. The
// file is named by the destination's place and the trust policy, so a
// change of either starts afresh. Without a cache folder, list reads all.
type listCaches map[string]*listCache

type listCache struct {
	path  string
	cache *catalog.Cache
}

func (lc listCaches) get(cfg *config.Config, dest string) *catalog.Cache {
	if c, ok := lc[dest]; ok {
		return c.cache
	}
	dir, err := os.UserCacheDir()
	d := cfg.Destinations[dest]
	if err != nil || d == nil {
		lc[dest] = &listCache{}
		return nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%v", d.Type, d.Path, d.Endpoint, d.Region, d.Bucket, d.Prefix, cfg.Encryption != nil)
	if cfg.Signing != nil {
		for _, k := range cfg.Signing.TrustedKeys {
			fmt.Fprintf(h, "\x00%s", k)
		}
	}
	path := filepath.Join(dir, "backproof", "catalog-"+hex.EncodeToString(h.Sum(nil))[:32]+".json")
	c := &listCache{path: path, cache: catalog.LoadCacheFile(path)}
	lc[dest] = c
	return c.cache
}

func (lc listCaches) save() {
	for _, c := range lc {
		if c.cache != nil {
			c.cache.Save(c.path) //nolint:errcheck // a cache that cannot be written only costs reads
		}
	}
}
