package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/backproof/backproof/backup"
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
			rs, err := recipients(cfg)
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
				res, err := runner.Run(e.ctx, backup.Target{
					Name:         t.Name,
					EngineName:   t.Engine,
					Engine:       eng,
					Destinations: openDestinations(e.ctx, cfg, t.Destinations),
					Encrypt:      rs,
				})
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

func (e *env) printBackupResults(results []*backup.Result) {
	for _, r := range results {
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
