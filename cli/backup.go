package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/backup"
	"github.com/backproof/backproof/lease"
)

func (e *env) backupCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backup [TARGET...]",
		Short: "Back up now (all targets when none is named)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			targets, err := selectTargets(cfg, args)
			if err != nil {
				return err
			}
			if err := checkWriter(cfg); err != nil {
				return err
			}
			rs, err := recipients(cfg)
			if err != nil {
				return err
			}
			opts, err := e.leaseOptions()
			if err != nil {
				return err
			}
			runner := &backup.Runner{Log: e.log, Version: e.build.Version}
			var results []*backup.Result
			var errs []error
			for _, t := range targets {
				eng, err := newEngine(t, e.log.With("target", t.Name))
				if err != nil {
					return err
				}
				res, err := e.backupTarget(e.ctx, runner, backup.Target{
					Name:         t.Name,
					EngineName:   t.Engine,
					Engine:       eng,
					Destinations: openDestinations(e.ctx, cfg, t.Destinations),
					Encrypt:      rs,
				}, opts)
				if res == nil { // no lease
					res = &backup.Result{Target: t.Name, Destinations: []backup.DestinationResult{}, Error: e.redactor.String(err.Error())}
				}
				results = append(results, res)
				if err != nil {
					errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
				}
				if e.ctx.Err() != nil {
					break
				}
			}
			if asJSON {
				if err := e.writeJSON(struct {
					Backups []*backup.Result `json:"backups"`
				}{results}); err != nil {
					return err
				}
			} else {
				e.printBackupResults(results)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

// backupTarget backs t up under its lease. Another process holding it fails
// the target at once with a *lease.HeldError naming the holder, and no
// result: a manual run never waits behind a daemon's, and a daemon's next
// scheduled run comes soon enough.
func (e *env) backupTarget(ctx context.Context, runner *backup.Runner, t backup.Target, opts lease.Options) (*backup.Result, error) {
	held, err := lease.Acquire(ctx, t.Destinations, t.Name, "backup", opts)
	if err != nil {
		return nil, err
	}
	defer held.Release(context.WithoutCancel(ctx))
	res, err := runner.Run(held.Context(), t)
	if held.Context().Err() != nil && ctx.Err() == nil {
		err = errors.Join(context.Cause(held.Context()), err)
		res.Error = e.redactor.String(err.Error())
	}
	return res, err
}

func (e *env) printBackupResults(results []*backup.Result) {
	for _, r := range results {
		if r.ID == "" {
			fmt.Fprintf(e.stdout, "%s: FAILED: %s\n", r.Target, e.redactor.String(r.Error))
			continue
		}
		status := "committed"
		if !r.Committed() {
			status = "FAILED"
		}
		fmt.Fprintf(e.stdout, "%s %s: %s (%s, %s)\n", r.Target, r.ID, status,
			formatSize(r.Size), r.End.Sub(r.Start).Round(time.Millisecond))
		for _, d := range r.Destinations {
			if d.Committed {
				fmt.Fprintf(e.stdout, "  %-12s committed\n", d.Name)
			} else {
				fmt.Fprintf(e.stdout, "  %-12s FAILED: %s\n", d.Name, e.redactor.String(d.Error))
			}
		}
	}
}
