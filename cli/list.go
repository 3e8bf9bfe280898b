package cli

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/catalog"
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
			for _, t := range targets {
				for _, d := range openDestinations(e.ctx, cfg, t.Destinations) {
					if only != "" && d.Name != only {
						continue
					}
					l, err := catalog.Read(e.ctx, d, t.Name, nil)
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
							le.Verification = e.lastVerification(d, t.Name, b)
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
func (e *env) lastVerification(d destination.Destination, target string, b catalog.Backup) *lastVerification {
	if len(b.Records) == 0 {
		return nil
	}
	name := b.Records[len(b.Records)-1]
	var rec verify.Record
	if err := catalog.ReadRecord(e.ctx, d, target, b.ID, name, &rec); err != nil {
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
