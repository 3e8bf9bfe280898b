package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/config"
	"github.com/backproof/backproof/lease"
	"github.com/backproof/backproof/prune"
)

func (e *env) pruneCommand() *cobra.Command {
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "prune [TARGET...]",
		Short: "Apply retention: delete the backups each target's policy does not keep",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, targets, err := e.loadTargets(args, "")
			if err != nil {
				return err
			}
			opts, err := e.leaseOptions()
			if err != nil {
				return err
			}
			reports := []*prune.Report{}
			var errs []error
			for _, t := range targets {
				rep, err := e.pruneTarget(e.ctx, cfg, t, opts, dryRun)
				reports = append(reports, rep)
				if err != nil {
					errs = append(errs, fmt.Errorf("prune %s: %w", t.Name, err))
				}
				if e.ctx.Err() != nil {
					break
				}
			}
			if asJSON {
				if err := e.writeJSON(struct {
					Prune []*prune.Report `json:"prune"`
				}{reports}); err != nil {
					return err
				}
			} else {
				e.printPrune(reports)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

// pruneTarget prunes one target under its lease; a dry run reads only and
// takes no lease.
func (e *env) pruneTarget(ctx context.Context, cfg *config.Config, t *config.Target, opts lease.Options, dryRun bool) (*prune.Report, error) {
	dests := openDestinations(ctx, cfg, t.Destinations)
	outer := ctx
	var held *lease.Lease
	if !dryRun {
		var err error
		held, err = lease.Acquire(ctx, dests, t.Name, "prune", opts)
		if err != nil {
			return &prune.Report{Target: t.Name, Destinations: []prune.DestinationReport{}, Error: e.redactor.String(err.Error())}, err
		}
		defer held.Release(context.WithoutCancel(ctx))
		ctx = held.Context()
	}
	rep, err := prune.Target(ctx, e.log, t.Name, t.Retention, dests, held, time.Now(), dryRun)
	if held != nil && held.Context().Err() != nil && outer.Err() == nil {
		err = errors.Join(context.Cause(held.Context()), err)
	}
	for i := range rep.Destinations {
		rep.Destinations[i].Error = e.redactor.String(rep.Destinations[i].Error)
	}
	return rep, err
}

func (e *env) printPrune(reports []*prune.Report) {
	for _, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(e.stdout, "%s: FAILED: %s\n", r.Target, r.Error)
			continue
		}
		for _, d := range r.Destinations {
			if d.Error != "" && len(d.Plan) == 0 {
				fmt.Fprintf(e.stdout, "%s on %s: FAILED: %s\n", r.Target, d.Name, d.Error)
				continue
			}
			verb := "deleted"
			if r.DryRun {
				verb = "would delete"
			}
			fmt.Fprintf(e.stdout, "%s on %s: keep %d, %s %d\n", r.Target, d.Name, len(d.Plan)-len(d.Deleted), verb, len(d.Deleted))
			deleted := map[string]bool{}
			for _, id := range d.Deleted {
				deleted[id] = true
			}
			for _, p := range d.Plan {
				action := "NOT deleted" // the run stopped before it
				switch {
				case p.Keep:
					action = "keep"
				case deleted[p.ID] && r.DryRun:
					action = "would delete"
				case deleted[p.ID]:
					action = "deleted"
				}
				fmt.Fprintln(e.stdout, strings.TrimRight(fmt.Sprintf("  %s  %-12s  %s", p.ID, action, strings.Join(p.Reasons, ", ")), " "))
			}
			for _, id := range d.Debris {
				if r.DryRun {
					fmt.Fprintf(e.stdout, "  debris %s: would remove\n", id)
				} else {
					fmt.Fprintf(e.stdout, "  debris %s: removed\n", id)
				}
			}
			if d.Error != "" {
				fmt.Fprintf(e.stdout, "  FAILED: %s\n", d.Error)
			}
		}
	}
}
